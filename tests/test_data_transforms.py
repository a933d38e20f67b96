"""The image transforms of the data path, checked against hand-made examples and torchvision."""

import pytest
import torch
import torchvision
from torch.nn import functional as F
from torchvision import transforms

from minidense import data

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
