"""The book's layers: the convolution block, the dense block and the transition block.

These follow the d2l chapter "Densely Connected Networks (DenseNet)": pre-activation
(BN -> ReLU -> Conv) and convolutions *with* bias. The paper family in `models.py`
uses its own bias-free layers, as torchvision does.
"""

import torch
from torch import nn

from minidense._checks import check_features, check_positive_int

__all__ = ["conv_block", "DenseBlock", "transition_block", "POOLS"]

POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def conv_block(in_channels, out_channels):
    """BN -> ReLU -> Conv 3x3 (padding 1, with bias).

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.
    """
    check_positive_int("in_channels", in_channels)
    check_positive_int("out_channels", out_channels)
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """``num_convs`` convolution blocks, each fed the concatenation of all earlier outputs.

    Layer ``i`` (counting from 0) sees ``in_channels + i * growth_rate`` channels and adds
    ``growth_rate`` new ones (``k`` in the paper).

    Shapes: ``(N, in_channels, H, W) -> (N, in_channels + num_convs * growth_rate, H, W)``.

    Args:
        num_convs: number of convolution blocks (``L`` in the prose).
        in_channels: channels of the block's input (``k0``).
        growth_rate: channels each convolution block adds (``k``).
    """

    def __init__(self, num_convs, in_channels, growth_rate):
        super().__init__()
        check_positive_int("num_convs", num_convs)
        check_positive_int("in_channels", in_channels)
        check_positive_int("growth_rate", growth_rate)
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.net = nn.Sequential(
            *(conv_block(in_channels + i * growth_rate, growth_rate) for i in range(num_convs))
        )
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, X):
        check_features(X, self.in_channels, "DenseBlock")
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)  # concatenate along the channel dimension
        return X


def transition_block(in_channels, out_channels, pool="avg", pool_size=2):
    """BN -> ReLU -> Conv 1x1 -> 2x2 pooling with stride 2.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.

    Args:
        in_channels: channels coming out of the dense block before it.
        out_channels: channels after the 1x1 convolution (``theta * in_channels`` in the paper).
        pool: ``"avg"`` (the paper and d2l) or ``"max"``.
        pool_size: the pooling window and stride, ``2`` or a pair ``(height, width)``; a reader of rows
            uses ``(2, 1)`` to halve the height and keep the width (its time axis).
    """
    check_positive_int("in_channels", in_channels)
    check_positive_int("out_channels", out_channels)
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
        POOLS[pool](kernel_size=pool_size, stride=pool_size),
    )
