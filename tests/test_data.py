"""minidense.data: Fashion-MNIST read, subset, shuffled, augmented and resized on the device.

Sections: loading (shapes, fixed class-balanced subsets, seeded shuffling, resizing, bad files); the
suite's data_root fixture; seeding of orders and augmentation draws; subsets at the edges; the image
transforms against hand-made examples and torchvision.
"""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch.nn import functional as F
from torchvision import transforms

import minidense
from minidense import data
from minidense.data import FashionMNISTBatches

# Fashion-MNIST loading: shapes, the class-balanced fixed subsets, seeded shuffling, resizing, bad files.


def test_batches_have_the_promised_shapes_and_types(data_root):
    train_iter, test_iter = minidense.load_fashion_mnist(32, root=data_root, device="cpu", num_train=100,
                                                         num_test=50)
    X, y = next(iter(train_iter))
    assert X.shape == (32, 1, 96, 96) and X.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    assert X.min() >= 0 and X.max() <= 1
    assert (len(train_iter), len(test_iter)) == (4, 2)  # 100 / 32 rounded up: the last batch is partial
    assert sum(len(y) for _, y in train_iter) == 100


def test_full_splits_have_all_images(data_root):
    images, labels = data.read_fashion_mnist("train", data_root)
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [6_000] * 10
    images, labels = data.read_fashion_mnist("test", data_root)
    assert images.shape == (10_000, 28, 28)
    # The data README gives the pixel means: 0.2860 (train), 0.2868 (test).
    assert images.float().mean().item() / 255 == pytest.approx(0.2868, abs=5e-5)


def test_subset_is_class_balanced_and_fixed(data_root):
    _, labels = data.read_fashion_mnist("train", data_root)
    idx = data.balanced_subset(labels, 1_003)
    assert torch.bincount(labels[idx]).tolist() == [101, 101, 101] + [100] * 7
    assert torch.equal(idx, data.balanced_subset(labels, 1_003))
    # the first examples of each class in file order
    first_class_0 = torch.nonzero(labels == 0).flatten()[:101]
    assert set(first_class_0.tolist()) <= set(idx.tolist())


def test_subset_larger_than_the_split_is_a_clear_error(data_root):
    _, labels = data.read_fashion_mnist("test", data_root)
    with pytest.raises(ValueError, match="asked for 20,000 examples, but the split has only 10,000"):
        data.balanced_subset(labels, 20_000)


def test_shuffling_is_seeded_per_epoch_and_ignores_the_global_rng(data_root):
    def epoch_labels(seed, epochs=2, global_seed=0):
        torch.manual_seed(global_seed)
        train_iter, _ = minidense.load_fashion_mnist(64, resize=28, root=data_root, device="cpu",
                                                     num_train=256, num_test=64, seed=seed)
        return [torch.cat([y for _, y in train_iter]) for _ in range(epochs)]

    first, second = epoch_labels(0)
    assert not torch.equal(first, second)  # each epoch reshuffles
    again = epoch_labels(0, global_seed=123)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert not torch.equal(first, epoch_labels(1)[0])


def test_set_epoch_replays_an_epoch(data_root):
    train_iter, _ = minidense.load_fashion_mnist(64, resize=28, root=data_root, device="cpu", num_train=256,
                                                 num_test=64)
    epochs = [torch.cat([y for _, y in train_iter]) for _ in range(3)]
    train_iter.set_epoch(1)
    assert torch.equal(torch.cat([y for _, y in train_iter]), epochs[1])


def test_test_set_is_in_file_order(data_root):
    _, labels = data.read_fashion_mnist("test", data_root)
    _, test_iter = minidense.load_fashion_mnist(1000, resize=28, root=data_root, device="cpu", num_train=10)
    assert torch.equal(torch.cat([y for _, y in test_iter]), labels)


def test_batch_resize_equals_torchvision_resize_and_to_tensor(data_root):
    reference = torchvision.datasets.FashionMNIST(
        root=str(data_root), train=False, transform=transforms.Compose([transforms.Resize(96), transforms.ToTensor()]))
    expected = torch.stack([reference[i][0] for i in range(64)])
    _, test_iter = minidense.load_fashion_mnist(64, resize=96, root=data_root, device="cpu", num_train=10)
    X, y = next(iter(test_iter))
    assert torch.equal(y, torch.tensor([reference[i][1] for i in range(64)]))
    # PIL rounds its output to whole grey levels; we keep floats: at most half a level apart, plus rounding.
    torch.testing.assert_close(X, expected, atol=1 / 255 + 1e-6, rtol=0)
    assert (X - expected).abs().mean() < 1e-3


def copy_raw(data_root, tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                 "train-images-idx3-ubyte"):
        (raw / name).symlink_to(data_root / "FashionMNIST" / "raw" / name)
    return raw


def test_missing_data_offline_says_where_it_looked(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(FileNotFoundError) as error:
        minidense.load_fashion_mnist(64, root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "MINIDENSE_DATA" in message


def test_root_comes_from_minidense_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDENSE_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root(tmp_path / "other") == tmp_path / "other"


def test_truncated_file_is_found_by_its_size(data_root, tmp_path):
    raw = copy_raw(data_root, tmp_path)
    (raw / "t10k-images-idx3-ubyte").unlink()
    with open(data_root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte", "rb") as f:
        (raw / "t10k-images-idx3-ubyte").write_bytes(f.read(100_000))
    with pytest.raises(OSError, match="truncated or corrupt: 100,000 bytes, expected 7,840,016"):
        data.read_fashion_mnist("test", tmp_path)


def test_wrong_file_is_found_by_its_magic_number(data_root, tmp_path):
    raw = copy_raw(data_root, tmp_path)
    (raw / "t10k-images-idx3-ubyte").unlink()
    shutil.copy(data_root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", raw / "t10k-images-idx3-ubyte")
    with pytest.raises(OSError, match="is not a Fashion-MNIST idx file"):
        data.read_fashion_mnist("test", tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 8, "resize": -1}, "resize must be a positive integer, got -1"),
    ({"batch_size": 8, "num_train": 0}, "num_examples must be a positive integer, got 0"),
])
def test_bad_arguments_are_clear_errors(data_root, kwargs, message):
    with pytest.raises(ValueError) as error:
        minidense.load_fashion_mnist(root=data_root, device="cpu", **kwargs)
    assert message in str(error.value)


# The suite's ``data_root`` fixture: found as the library finds the data; missing data skips, but fails under CI.

ROOT = Path(__file__).resolve().parent.parent


def test_the_fixture_uses_the_librarys_root(data_root, request):
    given = request.config.getoption("--minidense-data")
    assert data_root == data.data_root(given)  # --minidense-data, else MINIDENSE_DATA, else ~/.cache/minidense
    images, _ = data.read_fashion_mnist("test", data_root)
    assert images.shape == (10_000, 28, 28)


def run_a_data_test(root, ci):
    """One data test of the suite, run with ``--minidense-data root`` (a folder without usable data)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MINIDENSE_DATA")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rs",
                           "--minidense-data", str(root), "tests/test_data.py::test_full_splits_have_all_images"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two pytest processes: ~10 s on 2 cores
def test_unusable_data_skips_locally_and_fails_under_ci(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\0" * 16)  # present (so nothing is downloaded), but not the data
    local = run_a_data_test(tmp_path, ci=False)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    assert f"no usable Fashion-MNIST under {tmp_path}" in local.stdout
    ci = run_a_data_test(tmp_path, ci=True)
    assert ci.returncode == 1 and "CI=true: a missing data set fails the run" in ci.stdout, ci.stdout + ci.stderr


def test_the_default_root_is_the_cache_folder_in_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIDENSE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.data_root() == tmp_path / ".cache" / "minidense"
    monkeypatch.setenv("MINIDENSE_DATA", str(tmp_path / "elsewhere"))
    assert data.data_root() == tmp_path / "elsewhere"
    assert data.data_root(tmp_path / "given") == tmp_path / "given"  # the argument wins
    assert data.data_root("~/x") == tmp_path / "x"  # ~ is expanded


def test_missing_files_are_downloaded_through_torchvision_into_the_root(data_root, tmp_path, monkeypatch):
    import shutil

    import torchvision

    calls = []

    def fake_download(root, train, download):
        calls.append((root, train, download))
        raw = data_root / "FashionMNIST" / "raw"
        (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        prefix = "train" if train else "t10k"
        for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
            shutil.copy(raw / name, tmp_path / "FashionMNIST" / "raw" / name)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_download)
    images, labels = data.read_fashion_mnist("test", tmp_path)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]  # both splits, download=True
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    data.read_fashion_mnist("train", tmp_path)
    assert len(calls) == 2  # the files are there now: nothing more is fetched


# Every (seed, epoch) has its own order and its own augmentation draws; neither depends on the batch size.
#
# A generator seeded with ``seed + epoch`` would give seed 0's second epoch the order of seed 1's
# first (and so on along every diagonal): paired comparisons over seeds would share epochs.

SEEDS = EPOCHS = range(4)


def batches(seed=0, batch_size=16, num_examples=64, translate=0, flip=False):
    generator = torch.Generator().manual_seed(1234)
    images = torch.randint(0, 256, (num_examples, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(num_examples) % 10
    return FashionMNISTBatches(images, labels, batch_size, resize=28, shuffle=True, seed=seed, translate=translate,
                               flip=flip)


def test_the_16_epoch_orders_of_seeds_0_to_3_are_all_distinct():
    orders = {(s, e): tuple(batches(seed=s).order(e).tolist()) for s, e in itertools.product(SEEDS, EPOCHS)}
    assert all(sorted(order) == list(range(64)) for order in orders.values())  # each one a permutation
    assert len(set(orders.values())) == 16, "two (seed, epoch) pairs share an order"


def test_the_16_augmentation_draws_are_all_distinct():
    draws = {}
    for s, e in itertools.product(SEEDS, EPOCHS):
        shifts, flips = batches(seed=s, translate=2, flip=True).augmentation(e)
        assert shifts.shape == (64, 2) and flips.shape == (64,) and flips.dtype == torch.bool
        assert shifts.abs().max() <= 2 and 0 < flips.sum() < 64
        draws[s, e] = (tuple(shifts.flatten().tolist()), tuple(flips.tolist()))
    assert len({shifts for shifts, _ in draws.values()}) == 16, "two (seed, epoch) pairs share their shifts"
    assert len({flips for _, flips in draws.values()}) == 16, "two (seed, epoch) pairs share their flips"


def test_the_draws_cover_every_shift_and_no_flip_without_flip():
    shifts, flips = batches(translate=2, flip=True, num_examples=1000).augmentation(0)
    assert set(shifts.flatten().tolist()) == {-2, -1, 0, 1, 2}
    assert 400 < flips.sum() < 600  # each image flipped with probability 1/2
    _, no_flips = batches(translate=2, flip=False, num_examples=1000).augmentation(0)
    assert not no_flips.any()


def test_order_and_augmentation_do_not_depend_on_the_batch_size():
    def epoch(batch_size, e):
        loader = batches(seed=3, batch_size=batch_size, translate=2, flip=True)
        loader.set_epoch(e)
        X, y = zip(*loader)
        return torch.cat(X), torch.cat(y), loader.augmentation(e)

    for e in (0, 2):
        X7, y7, (shifts7, flips7) = epoch(7, e)
        X64, y64, (shifts64, flips64) = epoch(64, e)
        assert torch.equal(y7, y64) and torch.equal(X7, X64)
        assert torch.equal(shifts7, shifts64) and torch.equal(flips7, flips64)


def test_augmented_images_are_the_originals_moved_and_mirrored():
    loader = batches(seed=1, batch_size=64, translate=2, flip=True)
    X, y = next(iter(loader))
    order, (shifts, flips) = loader.order(0), loader.augmentation(0)
    assert torch.equal(y, loader.labels[order])
    plain = batches(seed=1, batch_size=64)
    X_plain, _ = next(iter(plain))
    assert not torch.equal(X, X_plain)  # the augmentation did something ...
    untouched = (shifts == 0).all(dim=1) & ~flips
    assert untouched.any() and torch.equal(X[untouched], X_plain[untouched])  # ... and nothing to the rest


def test_translation_alone_and_flips_alone_each_augment():
    plain = torch.cat([X for X, _ in batches(seed=2)])
    for kwargs in (dict(translate=2), dict(flip=True)):
        augmented = torch.cat([X for X, _ in batches(seed=2, **kwargs)])
        assert not torch.equal(augmented, plain), kwargs


def test_the_order_and_draws_are_the_ones_the_recorded_runs_saw():
    """Pinned: book/results/ were trained on these orders (torch 2.14's randperm and randint, as
    requirements.txt pins). Another seeding would be as good, but every recorded run would need
    training again: change these numbers only together with the records."""
    loader = FashionMNISTBatches(torch.zeros(60_000, 28, 28, dtype=torch.uint8), torch.zeros(60_000, dtype=torch.long),
                                 256, shuffle=True, seed=0, translate=2, flip=True)
    assert loader.order(0)[:6].tolist() == [36044, 10678, 57327, 55074, 21567, 15479]
    assert loader.order(1)[:6].tolist() == [35845, 27522, 33254, 23645, 11299, 16178]
    shifts, flips = loader.augmentation(0)
    assert shifts[:4].tolist() == [[2, -2], [0, 1], [-2, 1], [2, -1]]
    assert flips[:8].tolist() == [False, False, True, False, True, True, True, True]
    loader.seed = 1
    assert loader.order(0)[:6].tolist() == [19294, 10708, 4262, 32388, 32480, 36634]
    shifts, flips = loader.augmentation(2)
    assert shifts[:4].tolist() == [[0, 1], [-1, 1], [1, 1], [-1, 1]]
    assert flips[:8].tolist() == [False, True, True, True, True, False, False, True]


# Fixed, class-balanced subsets, at the edges: the whole split, one image, more than a class has.

def test_the_whole_split_is_a_subset_of_itself(data_root):
    _, labels = data.read_fashion_mnist("test", data_root)
    assert torch.equal(data.balanced_subset(labels, 10_000), torch.arange(10_000))


def test_balanced_subset_worked_by_hand():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2])
    # 5 of 3 classes: 2 each for classes 0 and 1, 1 for class 2; the first of each class in file order
    assert data.balanced_subset(labels, 5, num_classes=3).tolist() == [0, 1, 2, 3, 5]
    assert data.balanced_subset(labels, 1, num_classes=3).tolist() == [1]  # one image: class 0's first
    with pytest.raises(ValueError, match="class 1 has only 2 examples, 3 were asked for"):
        data.balanced_subset(labels, 8, num_classes=3)  # 3 + 3 + 2: class 1 has two


def test_batches_default_to_96_pixels_seed_0_and_no_augmentation():
    images, labels = torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10)
    default = data.FashionMNISTBatches(images, labels, 4, shuffle=True)
    X, _ = next(iter(default))
    assert X.shape == (4, 1, 96, 96)
    seeded = data.FashionMNISTBatches(images, labels, 4, shuffle=True, seed=0)
    assert torch.equal(default.order(0), seeded.order(0)) and torch.equal(default.order(3), seeded.order(3))
    assert (default.translate, default.flip) == (0, False)
    plain = default.augmented()
    assert (plain.translate, plain.flip) == (0, False)  # augmented() with no arguments changes nothing


def test_load_fashion_mnist_defaults(data_root):
    train_iter, test_iter = data.load_fashion_mnist(8, root=data_root, num_train=20, num_test=10)
    X, _ = next(iter(train_iter))
    assert X.device.type == ("cuda" if torch.cuda.is_available() else "cpu") and X.shape[-1] == 96
    seeded, _ = data.load_fashion_mnist(8, root=data_root, num_train=20, num_test=10, seed=0)
    assert torch.equal(train_iter.order(0), seeded.order(0))  # the default seed is 0


# The image transforms of the data path, checked against hand-made examples and torchvision.

IMAGE = torch.arange(1, 21, dtype=torch.uint8).reshape(4, 5)
# [[ 1,  2,  3,  4,  5],
#  [ 6,  7,  8,  9, 10],
#  [11, 12, 13, 14, 15],
#  [16, 17, 18, 19, 20]]


def test_shift_and_flip_on_a_4x5_image_worked_by_hand():
    """Four copies of IMAGE, each with its own shift and flip, in one call.

    A flipped image's column shift is applied in the unflipped frame: the image is moved, then
    mirrored, so "one column right" ends up one column left of the mirror image. (The function's
    docstring says the flip comes first; the code, and every recorded run, shift first. The two
    give the same distribution of images, since shifts are drawn symmetric around 0.)
    """
    images = IMAGE.expand(4, 4, 5).clone()
    shifts = torch.tensor([[1, -2],   # one row down, two columns left
                           [0, 1],    # one column right, then mirrored (see below)
                           [0, 0],    # untouched
                           [-1, 0]])  # mirrored, then one row up
    flips = torch.tensor([False, True, False, True])
    expected = torch.tensor([
        [[0, 0, 0, 0, 0],
         [3, 4, 5, 0, 0],
         [8, 9, 10, 0, 0],
         [13, 14, 15, 0, 0]],
        [[4, 3, 2, 1, 0],
         [9, 8, 7, 6, 0],
         [14, 13, 12, 11, 0],
         [19, 18, 17, 16, 0]],
        IMAGE.tolist(),
        [[10, 9, 8, 7, 6],
         [15, 14, 13, 12, 11],
         [20, 19, 18, 17, 16],
         [0, 0, 0, 0, 0]],
    ], dtype=torch.uint8)
    out = data.shift_and_flip(images, shifts, flips)
    assert out.dtype == torch.uint8 and out.shape == (4, 4, 5)
    assert torch.equal(out, expected)
    assert torch.equal(images, IMAGE.expand(4, 4, 5))  # the input is left as it was


def test_shift_and_flip_with_nothing_to_do_is_the_identity():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    no_shift, no_flip = torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, dtype=torch.bool)
    assert torch.equal(data.shift_and_flip(images, no_shift, no_flip), images)


def test_a_shift_past_the_edge_leaves_only_background():
    out = data.shift_and_flip(IMAGE[None], torch.tensor([[0, 5]]), torch.tensor([False]))
    assert not out.any()


# Measured over the first 2,000 test images against torchvision's Resize on PIL images (PIL's
# bilinear filter antialiases when it shrinks; PIL rounds to whole grey levels, we keep floats):
#   14 px: max 1.00 grey level, mean 0.197;   24 px: max 1.00, mean 0.181.
# (Over all 10,000 test images the max is 1.0001 at both sizes.) Without antialiasing the same
# images are 74 (14 px) and 58 (24 px) grey levels off at most, 6.5 and 2.3 on average.
MAX_GREY_LEVELS, MEAN_GREY_LEVELS = 1.01, 0.25


@pytest.mark.parametrize("size", [14, 24])
def test_shrinking_matches_torchvision_resize_within_one_grey_level(data_root, size):
    images, _ = data.read_fashion_mnist("test", data_root)
    n = 2_000
    reference = torchvision.datasets.FashionMNIST(
        root=str(data_root), train=False,
        transform=transforms.Compose([transforms.Resize(size), transforms.ToTensor()]))
    expected = torch.stack([reference[i][0] for i in range(n)])
    X = data.resize_batch(images[:n], size)
    assert X.shape == expected.shape == (n, 1, size, size) and X.dtype == torch.float32
    difference = (X - expected).abs() * 255
    assert difference.max() <= MAX_GREY_LEVELS, f"max {difference.max():.3f} grey levels"
    assert difference.mean() <= MEAN_GREY_LEVELS, f"mean {difference.mean():.3f} grey levels"
    # the tolerance is tight enough to tell: plain bilinear interpolation (no antialiasing) fails it
    plain = F.interpolate(images[:n].unsqueeze(1).float() / 255, size=(size, size), mode="bilinear",
                          align_corners=False)
    assert ((plain - expected).abs() * 255).max() > 10 * MAX_GREY_LEVELS


def test_resize_to_28_keeps_the_images_and_the_memory_format_is_as_asked():
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    X = data.resize_batch(images, 28)
    assert torch.equal(X, images.unsqueeze(1).float() / 255)
    X = data.resize_batch(images.expand(2, 28, 28), 32, torch.channels_last)
    assert X.shape == (2, 1, 32, 32) and X.is_contiguous(memory_format=torch.channels_last)
