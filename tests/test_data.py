"""Fashion-MNIST loading: shapes, the class-balanced fixed subsets, seeded shuffling, resizing, bad files."""

import shutil

import pytest
import torch
import torchvision
from torchvision import transforms

import minidense
from minidense import data


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
