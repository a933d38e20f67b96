"""Networks: the book's DenseNet (d2l's simplification) and the paper family."""

from collections import OrderedDict

from torch import nn

from minidense._checks import check_image, check_positive_int
from minidense.blocks import POOLS, DenseBlock, transition_block

__all__ = ["densenet", "BookDenseNet", "init_cnn", "min_input_size"]


def init_cnn(module):
    """d2l's initialisation: Xavier-uniform weights for every ``Conv2d`` and ``Linear``."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)


def _spatial_out(size, layer):
    """Height (or width) after ``layer`` for an input of ``size`` pixels."""
    as_pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    kernel, stride = as_pair(layer.kernel_size)[0], as_pair(layer.stride)[0]
    padding, dilation = as_pair(layer.padding)[0], as_pair(getattr(layer, "dilation", 1))[0]
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def min_input_size(net):
    """Smallest square image ``net`` can take: every conv and pooling keeps at least one pixel."""
    resizing = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    size = 1
    while True:
        current = size
        for layer in resizing:
            current = _spatial_out(current, layer)
            if current < 1:
                break
        else:
            return size
        size += 1


class BookDenseNet(nn.Sequential):
    """The book's DenseNet, an ``nn.Sequential`` whose forward checks its input first.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)`` for ``H, W >= min_size``.
    """

    def __init__(self, modules, in_channels):
        super().__init__(modules)
        self.in_channels = in_channels
        self.min_size = min_input_size(self)

    def forward(self, X):
        check_image(X, self.in_channels, self.min_size, "densenet")
        return super().forward(X)


def densenet(num_classes=10, in_channels=1, growth_rate=32, convs_per_block=(4, 4, 4, 4),
             transition_pool="avg"):
    """The book's DenseNet (d2l's Fashion-MNIST network), initialised with Xavier-uniform weights.

    Stem: Conv 7x7/2 to 64 channels, BN, ReLU, MaxPool 3x3/2. Then dense blocks; between two
    blocks a transition halves the channels (``num_channels // 2``) and the height and width.
    Head: BN, ReLU, global average pooling, flatten, linear. The default has 758,226 parameters.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``; 96x96 is the book's input size.

    Args:
        num_classes: outputs of the final linear layer.
        in_channels: channels of the input images (1 for Fashion-MNIST).
        growth_rate: channels each convolution block adds (``k`` in the paper).
        convs_per_block: number of convolution blocks in each dense block.
        transition_pool: ``"avg"`` or ``"max"``, the pooling inside every transition block.
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    check_positive_int("growth_rate", growth_rate)
    if not isinstance(convs_per_block, (tuple, list)) or not convs_per_block:
        raise ValueError(f"convs_per_block must be a non-empty tuple, got {convs_per_block!r}")
    for num_convs in convs_per_block:
        check_positive_int("num_convs (each entry of convs_per_block)", num_convs)
    if transition_pool not in POOLS:
        raise ValueError(f"transition_pool must be one of {sorted(POOLS)}, got {transition_pool!r}")

    num_channels = 64
    layers = OrderedDict(
        stem=nn.Sequential(
            nn.Conv2d(in_channels, num_channels, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(num_channels),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
    )
    for i, num_convs in enumerate(convs_per_block, start=1):
        layers[f"denseblock{i}"] = DenseBlock(num_convs, num_channels, growth_rate)
        num_channels += num_convs * growth_rate
        if i != len(convs_per_block):
            layers[f"transition{i}"] = transition_block(num_channels, num_channels // 2,
                                                        pool=transition_pool)
            num_channels = num_channels // 2
    layers.update(
        norm=nn.BatchNorm2d(num_channels),
        relu=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d((1, 1)),
        flatten=nn.Flatten(),
        fc=nn.Linear(num_channels, num_classes),
    )
    net = BookDenseNet(layers, in_channels)
    net.apply(init_cnn)
    return net
