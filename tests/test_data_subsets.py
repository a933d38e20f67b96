"""Fixed, class-balanced subsets, at the edges: the whole split, one image, more than a class has."""

import pytest
import torch

from minidense import data


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
