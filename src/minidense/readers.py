"""Readers of rows: an encoder that keeps the image's width as a time axis, and a per-column classifier.

The encoder's stem divides height and width by 4, then its transitions halve only the height
(pooling ``(2, 1)``, as CRNN-style text readers do), so that each of its ``T = width / 4`` columns
sees a strip of the row; the head averages each column over the remaining height and classifies it
into the ten classes and the CTC blank (:mod:`minidense.ctc`). Two encoders, built the same way and
of similar size, for the swap: ``"densenet"`` (the book's dense blocks and transitions) and
``"resnet"`` (residual blocks of the same pre-activation convolution blocks, same transitions).

Shapes: ``(N, 1, height, width) -> (N, width // 4, 11)``.
"""

from collections import OrderedDict

import torch
from torch import nn

from minidense._checks import check_features, check_positive_int
from minidense.blocks import DenseBlock, conv_block, transition_block
from minidense.ctc import BLANK, row_scores
from minidense.data import resize_batch

__all__ = ["BACKBONES", "ResidualBlock", "row_reader", "time_steps", "read_with_true_boxes"]

BACKBONES = ("densenet", "resnet")
_POOL = (2, 1)  # a transition halves the height, keeps the width
_STEM_CHANNELS = 64


def time_steps(width):
    """The number of columns (time steps) a reader's encoder leaves of an image ``width`` pixels wide."""
    return width // 4


class ResidualBlock(nn.Module):
    """``num_convs`` convolution blocks of constant width, each adding its output to its input.

    Shapes: ``(N, channels, H, W) -> (N, channels, H, W)``.
    """

    def __init__(self, num_convs, channels):
        super().__init__()
        check_positive_int("num_convs", num_convs)
        self.channels = channels
        self.net = nn.Sequential(*(conv_block(channels, channels) for _ in range(num_convs)))
        self.out_channels = channels

    def forward(self, X):
        check_features(X, self.channels, "ResidualBlock")
        for blk in self.net:
            X = X + blk(X)
        return X


def _stage(backbone, num_convs, channels, growth_rate):
    if backbone == "densenet":
        return DenseBlock(num_convs, channels, growth_rate)
    return ResidualBlock(num_convs, channels)


class _Head(nn.Module):
    """BN, ReLU, mean over the height, one linear map per column: ``(N, C, H, T) -> (N, T, 11)``."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.classify = nn.Linear(channels, BLANK + 1)

    def forward(self, X):
        return self.classify(self.norm(X).mean(2).transpose(1, 2))


class _Reader(nn.Sequential):
    def __init__(self, layers, max_items, min_height):
        super().__init__(layers)
        self.max_items = max_items
        self.min_height = min_height

    def forward(self, X):
        steps = time_steps(X.shape[-1])
        if steps < 2 * self.max_items - 1:
            raise ValueError(f"an image {X.shape[-1]} pixels wide leaves {steps} time steps, fewer than the "
                             f"{2 * self.max_items - 1} that a row of {self.max_items} garments may need "
                             f"(equal neighbours need a blank between them): widen the canvas to at least "
                             f"{4 * (2 * self.max_items - 1)} pixels")
        if X.shape[-2] < self.min_height:
            raise ValueError(f"this reader needs rows at least {self.min_height} pixels high, got {X.shape[-2]}")
        return super().forward(X)


def row_reader(backbone="densenet", max_items=5, growth_rate=32, convs_per_block=(4, 4, 4, 4),
               transition_pool="avg"):
    """A reader of rows of up to ``max_items`` garments with the encoder ``backbone``, Xavier-initialised.

    Stem: Conv 3x3 with stride 2 to 64 channels, BN, ReLU, MaxPool 2x2. Then the stages
    (``convs_per_block`` convolution blocks each); between two stages a transition halves the
    channels and the height. ``"densenet"`` stages are dense blocks of
    ``growth_rate``; ``"resnet"`` stages are :class:`ResidualBlock` of the stage's width, chosen so
    that both encoders have about as many parameters (the widths ``growth_rate * (i + 3) // 2``).

    Shapes: ``(N, 1, H, W) -> (N, W // 4, 11)``, with ``H >= 4 * 2 ** (len(convs_per_block) - 1)``
    (32 for four stages) and ``W // 4 >= 2 * max_items - 1``.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}")
    check_positive_int("max_items", max_items)
    check_positive_int("growth_rate", growth_rate)
    if not isinstance(convs_per_block, (tuple, list)) or not convs_per_block:
        raise ValueError(f"convs_per_block must be a non-empty tuple of block sizes, got {convs_per_block!r}")
    channels = _STEM_CHANNELS
    layers = OrderedDict(stem=nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2)))
    for i, num_convs in enumerate(convs_per_block):
        if backbone == "resnet":
            width = growth_rate * (i + 3) // 2
            layers[f"widen{i + 1}"] = nn.Conv2d(channels, width, kernel_size=1)
            channels = width
        layers[f"block{i + 1}"] = _stage(backbone, num_convs, channels, growth_rate)
        channels = layers[f"block{i + 1}"].out_channels
        if i + 1 < len(convs_per_block):
            layers[f"transition{i + 1}"] = transition_block(channels, channels // 2, transition_pool, _POOL)
            channels //= 2
    layers["head"] = _Head(channels)
    reader = _Reader(layers, max_items, min_height=4 * 2 ** (len(convs_per_block) - 1))
    for module in reader.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
    return reader


def read_with_true_boxes(classifier, rows, resize=96):
    """Read ``rows`` (a :class:`minidense.rows.GarmentRows`) with a single-garment ``classifier``
    that is told where each garment is: each one is cut out at its true place, resized to ``resize``
    like the classifier's training images, and classified; the row reads as these classes, left to right.

    A reference point for a reader, which must find the garments itself. Returns ``(row accuracy,
    item error rate)`` (see :func:`minidense.ctc.row_scores`).
    """
    device = next(classifier.parameters()).device
    classifier.eval()
    exact = errors = items = 0
    with torch.inference_mode():
        for _, y, cut in rows.with_boxes():
            pixels = (cut[:, 0] * 255).round().to(torch.uint8)  # the garments' own uint8 pixels
            classes = classifier(resize_batch(pixels, resize).to(device)).argmax(1).cpu()
            read = torch.full(y.shape, -1, dtype=torch.long)
            read[(y >= 0).cpu()] = classes  # row order, left to right, as the garments were cut out
            batch_exact, batch_errors, batch_items = row_scores(read, y.cpu())
            exact, errors, items = exact + batch_exact, errors + batch_errors, items + batch_items
    return exact / rows.num_rows, errors / items
