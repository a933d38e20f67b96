"""Fashion-MNIST as raw uint8 tensors, loaded once and resized batch by batch on the device.

d2l's loader turns every image into a PIL image, resizes it and converts it back, in worker
processes. Here the 28x28 images stay one uint8 tensor (47 MB for all 60,000) on the training
device; a batch is gathered by index and resized there in one ``interpolate`` call.
"""

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from minidense._checks import check_positive_int
from minidense.hardware import default_device

__all__ = ["load_fashion_mnist", "FashionMNISTBatches", "read_fashion_mnist", "data_root", "CLASS_NAMES",
           "balanced_subset", "read_subset", "resize_batch", "shift_and_flip"]

CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")

_FILES = {  # split -> (images, labels, number of examples)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # the idx format's magic numbers
_SIDE = 28


def data_root(root=None):
    """Where the data lives: ``root``, else ``MINIDENSE_DATA``, else ``~/.cache/minidense``."""
    return Path(root or os.environ.get("MINIDENSE_DATA") or Path.home() / ".cache" / "minidense").expanduser()


def _raw_dir(root):
    return root / "FashionMNIST" / "raw"


def _read_idx(path, magic, count, item_shape):
    """Read one idx file, checking its magic number and size before trusting it."""
    expected = 8 + 4 * len(item_shape) + count * int(np.prod(item_shape, dtype=np.int64))
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(8), dtype=">i4")
        if len(header) < 2 or header[0] != magic or header[1] != count:
            raise OSError(f"{path} is not a Fashion-MNIST idx file (magic number {magic}, {count} items): "
                          f"its header says {header.tolist()}. Delete it, or point MINIDENSE_DATA "
                          "at a folder with the official files.")
        if size != expected:
            raise OSError(f"{path} is truncated or corrupt: {size:,} bytes, expected {expected:,}. Delete it "
                          "to download it again, or point MINIDENSE_DATA at a folder with the official files.")
        f.seek(8 + 4 * len(item_shape))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    return torch.from_numpy(data.reshape(count, *item_shape).copy())


def _download(root):
    """Fetch the files through torchvision; on an offline machine say where we looked."""
    import torchvision

    try:
        for train in (True, False):
            torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)
    except Exception as error:
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {_raw_dir(root)} and downloading it failed ({error}). "
            "Put the four official files (train-images-idx3-ubyte, ...) there, or set MINIDENSE_DATA "
            "(or pass root=) to a folder whose FashionMNIST/raw/ holds them."
        ) from error


def read_fashion_mnist(split, root=None):
    """All images and labels of one split as uint8 ``(N, 28, 28)`` and int64 ``(N,)`` tensors."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = data_root(root)
    images_file, labels_file, count = _FILES[split]
    raw = _raw_dir(root)
    if not all((raw / name).exists() for name in (images_file, labels_file)):
        _download(root)
    images = _read_idx(raw / images_file, _IMAGES_MAGIC, count, (_SIDE, _SIDE))
    labels = _read_idx(raw / labels_file, _LABELS_MAGIC, count, ()).long()
    return images, labels


def read_subset(split, num_examples=None, root=None):
    """The fixed, class-balanced subset of ``num_examples`` images of a split (``None``: all of them), as
    uint8 ``(N, 28, 28)`` images and int64 ``(N,)`` labels (see :func:`balanced_subset`)."""
    images, labels = read_fashion_mnist(split, root)
    if num_examples is None:
        return images, labels
    idx = balanced_subset(labels, num_examples)
    return images[idx], labels[idx]


def balanced_subset(labels, num_examples, num_classes=10):
    """Indices of a fixed, class-balanced subset: the first examples of each class, in file order.

    Class ``c`` gets ``num_examples // num_classes`` examples, one more for the first
    ``num_examples % num_classes`` classes. The indices come back sorted.
    """
    check_positive_int("num_examples", num_examples)
    if num_examples > len(labels):
        raise ValueError(f"asked for {num_examples:,} examples, but the split has only {len(labels):,}")
    per_class, extra = divmod(num_examples, num_classes)
    chosen = []
    for c in range(num_classes):
        wanted = per_class + (c < extra)
        members = torch.nonzero(labels == c).flatten()[:wanted]
        if len(members) < wanted:
            raise ValueError(f"class {c} has only {len(members)} examples, {wanted} were asked for")
        chosen.append(members)
    return torch.cat(chosen).sort().values


def resize_batch(images, resize, memory_format=torch.contiguous_format):
    """uint8 ``(B, 28, 28)`` -> float32 ``(B, 1, resize, resize)`` in [0, 1], bilinear like ``Resize``."""
    X = images.unsqueeze(1).float().div_(255)
    if resize != X.shape[-1]:
        # Upsampling, PIL's bilinear filter and plain bilinear interpolation agree; shrinking needs antialiasing.
        X = F.interpolate(X, size=(resize, resize), mode="bilinear", align_corners=False,
                          antialias=resize < X.shape[-1])
    return X.contiguous(memory_format=memory_format)


def shift_and_flip(images, shifts, flips):
    """Each image moved by its shift and, where ``flips`` says so, mirrored left to right.

    Shapes: uint8 ``(B, H, W)``, int64 ``shifts (B, 2)`` (rows down, columns right; the pixels
    moved in are 0, the background), bool ``flips (B,)`` -> uint8 ``(B, H, W)``. The flip comes
    first, then the shift. One gather from a zero-padded copy does both.
    """
    B, H, W = images.shape
    pad = int(shifts.abs().max()) if len(shifts) else 0
    padded = F.pad(images, (pad, pad, pad, pad))
    device = images.device
    rows = pad - shifts[:, :1].to(device) + torch.arange(H, device=device)  # (B, H)
    cols = torch.arange(W, device=device).expand(B, W)
    cols = torch.where(flips.to(device)[:, None], W - 1 - cols, cols)
    cols = pad - shifts[:, 1:].to(device) + cols  # (B, W)
    return padded[torch.arange(B, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]


class FashionMNISTBatches:
    """An iterable of ``(X, y)`` batches over uint8 images kept on ``device``.

    ``X`` is float32 ``(B, 1, resize, resize)`` in [0, 1], ``y`` int64 ``(B,)``. With ``shuffle``
    the order of epoch ``e`` is a permutation drawn from a generator seeded with ``(seed, e)``,
    independent of the global RNG; every pass over the iterable starts the next epoch, and
    :meth:`set_epoch` jumps to one (which is how a resumed training finds its place).

    With ``translate`` or ``flip`` (see :meth:`augmented`) each image of epoch ``e`` is shifted by up
    to ``translate`` pixels and mirrored with probability 1/2 on the uint8 28x28 batch, before the
    resize; the draws come from a generator of their own, seeded with ``(seed, e)`` too, so the
    images of an epoch do not depend on the batch size or on an interruption.

    A shard (see :meth:`sharded`) serves one process's share of every batch, for training on
    several processes.
    """

    def __init__(self, images, labels, batch_size, resize=96, shuffle=False, seed=0, device=None,
                 translate=0, flip=False):
        check_positive_int("batch_size", batch_size)
        check_positive_int("resize", resize)
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.resize = resize
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.memory_format = torch.contiguous_format
        self.translate = translate
        self.flip = flip
        self.rank, self.world_size, self.even = 0, 1, True  # the whole of every batch (see sharded)

    @property
    def num_examples(self):
        """The examples served per epoch (by a shard: its own share)."""
        return len(self._positions()) if self.world_size > 1 else len(self.labels)

    def __len__(self):
        return -(-self.num_examples // self.batch_size)

    def with_batch_size(self, batch_size):
        """The same examples, order and epoch counter, served in batches of ``batch_size``."""
        other = FashionMNISTBatches(self.images, self.labels, batch_size, self.resize, self.shuffle,
                                    self.seed, self.device, self.translate, self.flip)
        other.epoch, other.memory_format = self.epoch, self.memory_format
        other.rank, other.world_size, other.even = self.rank, self.world_size, self.even
        return other

    def sharded(self, rank, world_size, even=True):
        """Rank ``rank``'s share of every batch, for ``world_size`` processes training together.

        Every process draws the same epoch order (and the same augmentation) and keeps the positions
        ``rank, rank + world_size, rank + 2 * world_size, ...`` of it, so that a batch of
        ``batch_size`` images becomes ``batch_size // world_size`` on each rank, and the ranks'
        shares of batch ``i`` together are exactly batch ``i`` of one process. ``batch_size`` must
        divide by ``world_size``.

        With ``even`` (for training), every rank serves the same number of batches of the same
        sizes, as data-parallel training needs (each step is one gradient all-reduce on every rank):
        where the epoch's last batch does not divide by ``world_size``, its last
        ``len % world_size`` images (at most ``world_size - 1``, others every epoch) are left out of
        that epoch. Without it (for evaluation), every image is served by exactly one rank.
        """
        check_positive_int("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")
        if self.world_size > 1:
            raise ValueError(f"these batches are already rank {self.rank}'s share of {self.world_size}")
        if self.batch_size % world_size:
            raise ValueError(f"a batch of {self.batch_size} does not divide into {world_size} equal shares: "
                             f"choose a batch size that is a multiple of {world_size}")
        other = self.with_batch_size(self.batch_size // world_size)
        other.rank, other.world_size, other.even = rank, world_size, even
        return other

    def _positions(self):
        """The positions of the epoch's order this iterator serves (a shard's, see :meth:`sharded`)."""
        n = len(self.labels)
        if self.even:
            n -= n % (self.batch_size * self.world_size) % self.world_size
        return torch.arange(self.rank, n, self.world_size)

    def augmented(self, translate=0, flip=False):
        """The same batches with shifted (up to ``translate`` pixels) and mirrored training images."""
        other = self.with_batch_size(self.batch_size)
        other.translate, other.flip = translate, flip
        return other

    def set_epoch(self, epoch):
        """Make the next pass yield the batches of ``epoch`` (0-based)."""
        self.epoch = epoch

    def order(self, epoch):
        """The example indices of ``epoch``, in the order they are served (a shard serves its positions of it)."""
        if not self.shuffle:
            return torch.arange(len(self.labels))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.labels), generator=generator)

    def augmentation(self, epoch):
        """``(shifts, flips)`` of every position of ``epoch``: int64 ``(N, 2)`` and bool ``(N,)``."""
        state = np.random.SeedSequence([self.seed, epoch, 1]).generate_state(2, dtype=np.uint64)
        generator = torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
        t, n = self.translate, len(self.labels)  # every image's draw, on every rank alike
        shifts = torch.randint(-t, t + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        return shifts, flips & self.flip

    def __iter__(self):
        epoch = self.epoch
        order = self.order(epoch).to(self.device)
        augment = self.translate or self.flip
        if augment:
            shifts, flips = (a.to(self.device) for a in self.augmentation(epoch))
        self.epoch += 1
        if self.world_size > 1:  # a shard: its positions of the epoch
            positions = self._positions().to(self.device)
            order = order[positions]
            if augment:
                shifts, flips = shifts[positions], flips[positions]
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            images = self.images[idx]
            if augment:
                images = shift_and_flip(images, shifts[start:start + self.batch_size],
                                        flips[start:start + self.batch_size])
            yield resize_batch(images, self.resize, self.memory_format), self.labels[idx]


def load_fashion_mnist(batch_size, resize=96, root=None, device=None, num_train=None, num_test=None, seed=0):
    """Fashion-MNIST as ``(train_iter, test_iter)``, batches already resized on ``device``.

    Args:
        batch_size: images per batch.
        resize: side of the square images served (28 keeps the originals).
        root: folder holding ``FashionMNIST/raw/``; else ``MINIDENSE_DATA``, else ``~/.cache/minidense``.
            Missing files are downloaded through torchvision when the machine is online.
        device: where images live and batches are made; default CUDA when available, else CPU.
        num_train, num_test: fixed, class-balanced subsets; ``None`` means every image.
        seed: seeds the training set's shuffling (its own generator, not the global RNG).

    Returns:
        Two :class:`FashionMNISTBatches`; the training one reshuffles every epoch, the test one
        keeps file order. ``X``: float32 ``(B, 1, resize, resize)`` in [0, 1]; ``y``: int64 ``(B,)``.
    """
    if device is None:
        device = default_device()
    train_images, train_labels = read_subset("train", num_train, root)
    test_images, test_labels = read_subset("test", num_test, root)
    train_iter = FashionMNISTBatches(train_images, train_labels, batch_size, resize, shuffle=True,
                                     seed=seed, device=device)
    test_iter = FashionMNISTBatches(test_images, test_labels, batch_size, resize, device=device)
    return train_iter, test_iter
