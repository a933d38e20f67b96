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
