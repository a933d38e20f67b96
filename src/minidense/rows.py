"""Rows of garments: Fashion-MNIST images placed left to right on a wide canvas, labelled by their classes.

The task of the chapter "Reading a row of garments". A row holds 1 to ``max_items`` garments (28x28
each, the original pixels) at random horizontal gaps and vertical offsets on a ``height x width``
canvas; its label is the sequence of their classes, left to right. Rows are composed on the device
from the uint8 images, with draws from a generator seeded by ``(seed, epoch)`` like the library's
shuffling, so that a resumed training sees the same rows. Training rows are made only from training
images, test rows only from test images, and the test rows are the same on every pass.
"""

import numpy as np
import torch

from minidense._checks import check_positive_int
from minidense.data import read_subset

__all__ = ["GarmentRows", "load_rows", "draw_rows", "compose_rows", "boxes", "check_canvas", "ITEM_SIZE",
           "PAD_LABEL", "HEIGHT", "WIDTH"]

ITEM_SIZE = 28  # the side of a Fashion-MNIST image
HEIGHT, WIDTH = 32, 160  # the canvas of a row, unless a caller says otherwise
PAD_LABEL = -1  # fills a label row after its last garment


def check_canvas(max_items, height, width):
    """Raise ``ValueError`` unless ``max_items`` garments fit side by side on a ``height x width`` canvas."""
    check_positive_int("max_items", max_items)
    check_positive_int("height", height)
    check_positive_int("width", width)
    if height < ITEM_SIZE:
        raise ValueError(f"a row's canvas must be at least {ITEM_SIZE} pixels high to hold a garment, got {height}")
    if max_items * ITEM_SIZE > width:
        raise ValueError(f"{max_items} garments of {ITEM_SIZE} pixels need a canvas at least "
                         f"{max_items * ITEM_SIZE} pixels wide, got {width}: lower max_items to at most "
                         f"{width // ITEM_SIZE} or widen the canvas")


def _generator(seed, epoch, stream):
    """A torch generator for ``(seed, epoch, stream)``, independent of the global RNG."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def draw_rows(num_rows, num_images, max_items, height, width, generator):
    """The random choices that make ``num_rows`` rows: how many garments, which, and where.

    Returns ``counts`` int64 ``(R,)`` in ``[1, max_items]``; ``picks`` int64 ``(R, max_items)``,
    indices into the ``num_images`` images (slots past a row's count are unused); ``xs`` and ``ys``
    int64 ``(R, max_items)``, each garment's left column and top row. The free width of a row is
    split at random into gaps before, between and after its garments, so garments never overlap.
    """
    check_positive_int("num_rows", num_rows)
    check_positive_int("num_images", num_images)
    check_canvas(max_items, height, width)
    counts = torch.randint(1, max_items + 1, (num_rows,), generator=generator)
    picks = torch.randint(0, num_images, (num_rows, max_items), generator=generator)
    slot = torch.arange(max_items + 1)
    weights = torch.rand(num_rows, max_items + 1, generator=generator) * (slot <= counts[:, None])
    free = (width - counts * ITEM_SIZE)[:, None]
    shares = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    gaps = (free * shares).floor().long()  # (R, max_items + 1), summing to at most the free width
    xs = gaps.cumsum(1)[:, :max_items] + slot[:max_items] * ITEM_SIZE
    ys = torch.randint(0, height - ITEM_SIZE + 1, (num_rows, max_items), generator=generator)
    return counts, picks, xs, ys


def compose_rows(images, labels, counts, picks, xs, ys, height, width):
    """Paste the drawn garments onto blank canvases.

    Shapes: uint8 ``images (N, 28, 28)``, int64 ``labels (N,)`` and the draws of :func:`draw_rows`
    -> float32 ``X (R, 1, height, width)`` in [0, 1] and int64 ``y (R, max_items)``: the classes
    left to right, then :data:`PAD_LABEL`.
    """
    device = images.device
    counts, picks, xs, ys = (t.to(device) for t in (counts, picks, xs, ys))
    num_rows, max_items = picks.shape
    canvas = torch.zeros(num_rows, height, width, dtype=torch.uint8, device=device)
    y = torch.full((num_rows, max_items), PAD_LABEL, dtype=torch.long, device=device)
    offsets = torch.arange(ITEM_SIZE, device=device)
    for slot in range(max_items):
        rows = torch.nonzero(counts > slot).flatten()
        top = ys[rows, slot][:, None, None] + offsets[None, :, None]  # (r, 28, 1)
        left = xs[rows, slot][:, None, None] + offsets[None, None, :]  # (r, 1, 28)
        canvas[rows[:, None, None], top, left] = images[picks[rows, slot]]
        y[rows, slot] = labels[picks[rows, slot]]
    return canvas.unsqueeze(1).float().div_(255), y


def boxes(X, counts, xs, ys):
    """The garments of composed rows cut out at their true places, in row order, left to right.

    Shapes: ``X (R, 1, H, W)`` and the draws of :func:`draw_rows` -> ``(sum(counts), 1, 28, 28)``.
    """
    offsets = torch.arange(ITEM_SIZE, device=X.device)
    slots = torch.arange(xs.shape[1], device=X.device)
    rows, slot = torch.nonzero(slots[None, :] < counts.to(X.device)[:, None], as_tuple=True)
    top = ys.to(X.device)[rows, slot][:, None, None] + offsets[None, :, None]
    left = xs.to(X.device)[rows, slot][:, None, None] + offsets[None, None, :]
    return X[rows[:, None, None], 0, top, left].unsqueeze(1)


class GarmentRows:
    """An iterable of ``(X, y)`` batches of rows composed from one split's uint8 images on ``device``.

    ``X`` is float32 ``(B, 1, height, width)`` in [0, 1], ``y`` int64 ``(B, max_items)`` (classes left
    to right, then :data:`PAD_LABEL`). With ``fresh`` (for training) epoch ``e`` serves ``num_rows``
    new rows drawn from a generator seeded with ``(seed, e)``; every pass starts the next epoch, and
    :meth:`set_epoch` jumps to one (how a resumed training finds its place). Without it (for testing)
    every pass serves the same ``num_rows`` rows, those of epoch 0.
    """

    task = "rows"  # see minidense.tasks: trained with CTC, a row right when read whole

    def __init__(self, images, labels, batch_size, num_rows, max_items=5, height=HEIGHT, width=WIDTH, seed=0,
                 fresh=True, device=None):
        check_positive_int("batch_size", batch_size)
        check_positive_int("num_rows", num_rows)
        check_canvas(max_items, height, width)
        if images.dim() != 3 or tuple(images.shape[1:]) != (ITEM_SIZE, ITEM_SIZE) or len(images) != len(labels):
            raise ValueError(f"rows are composed from uint8 images of shape (N, {ITEM_SIZE}, {ITEM_SIZE}) and "
                             f"N labels, got images {tuple(images.shape)} and {len(labels)} labels")
        self.device = torch.device(device) if device is not None else images.device
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.batch_size, self.num_rows = batch_size, num_rows
        self.max_items, self.height, self.width = max_items, height, width
        self.seed, self.fresh, self.epoch = seed, fresh, 0
        self.memory_format = torch.contiguous_format

    @property
    def num_examples(self):
        """The rows served per epoch."""
        return self.num_rows

    def __len__(self):
        return -(-self.num_rows // self.batch_size)

    def set_epoch(self, epoch):
        """Make the next pass yield the rows of ``epoch`` (0-based)."""
        self.epoch = epoch

    def draws(self, epoch):
        """The draws (see :func:`draw_rows`) of the rows of ``epoch``."""
        generator = _generator(self.seed, epoch if self.fresh else 0, 2)
        return draw_rows(self.num_rows, len(self.labels), self.max_items, self.height, self.width, generator)

    def with_boxes(self):
        """The rows of the next pass with their garments cut out: ``(X, y, boxes)`` batches, ``boxes``
        ``(garments in the batch, 1, 28, 28)`` in row order (see :func:`boxes`)."""
        draws = self.draws(self.epoch if self.fresh else 0)
        for (X, y), start in zip(self, range(0, self.num_rows, self.batch_size)):
            counts, _, xs, ys = (d[start:start + self.batch_size] for d in draws)
            yield X, y, boxes(X, counts, xs, ys)

    def __iter__(self):
        draws = self.draws(self.epoch)
        self.epoch += 1
        for start in range(0, self.num_rows, self.batch_size):
            part = (d[start:start + self.batch_size] for d in draws)
            X, y = compose_rows(self.images, self.labels, *part, self.height, self.width)
            yield X.contiguous(memory_format=self.memory_format), y


def load_rows(batch_size, num_train=None, num_test=None, max_items=5, height=HEIGHT, width=WIDTH, root=None,
              device=None, seed=0):
    """Rows of garments as ``(train_iter, test_iter)``, :func:`minidense.load_fashion_mnist`'s twin.

    The training rows are composed from the fixed, class-balanced subset of ``num_train`` training
    images, ``num_train`` new rows every epoch; the test rows from ``num_test`` test images, the same
    ``num_test`` rows on every pass (drawn from ``seed``). ``None`` means every image of the split
    (60,000 and 10,000) and as many rows. ``root`` and ``device`` as for ``load_fashion_mnist``.

    Returns two :class:`GarmentRows`: ``X`` float32 ``(B, 1, height, width)``, ``y`` int64
    ``(B, max_items)``.
    """
    check_canvas(max_items, height, width)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    splits = []
    for split, count in (("train", num_train), ("test", num_test)):
        images, labels = read_subset(split, count, root)
        splits.append(GarmentRows(images, labels, batch_size, len(labels), max_items, height, width, seed,
                                  fresh=split == "train", device=device))
    return tuple(splits)
