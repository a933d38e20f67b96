"""Networks: the book's DenseNet (d2l's simplification) and the paper family."""

import contextlib
import numbers
import re
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from minidense._checks import check_image, check_positive_int, check_state_dict_fits
from minidense.blocks import POOLS, DenseBlock, transition_block

__all__ = ["densenet", "BookDenseNet", "init_cnn", "min_input_size",
           "DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
           "cifar_densenet", "load_torchvision_state_dict"]


def init_cnn(module):
    """d2l's initialisation: Xavier-uniform weights for every ``Conv2d`` and ``Linear``."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)


def _spatial_out(size, layer):
    """Height (or width) after ``layer`` for an input of ``size`` pixels."""
    as_pair = lambda v: v if isinstance(v, tuple) else (v, v)
    kernel, stride = as_pair(layer.kernel_size)[0], as_pair(layer.stride)[0]
    padding, dilation = as_pair(layer.padding)[0], as_pair(getattr(layer, "dilation", 1))[0]
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def min_input_size(net):
    """Smallest square image ``net`` can take: every conv and pooling keeps at least one pixel.

    Every layer's output size grows with its input size, so the smallest size that fits is found by
    doubling, then bisecting: a few dozen passes over the layers even for a network that halves
    its input twenty times.
    """
    resizing = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]

    def fits(size):
        for layer in resizing:
            size = _spatial_out(size, layer)
            if size < 1:
                return False
        return True

    high = 1
    while not fits(high):
        high *= 2
    low = high // 2  # does not fit (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


class BookDenseNet(nn.Sequential):
    """The book's DenseNet, an ``nn.Sequential`` whose forward checks its input first.

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)`` for ``H, W >= min_size``.
    """

    def __init__(self, modules, in_channels):
        super().__init__(modules)
        self.in_channels = in_channels
        self.min_size = min_input_size(self)

    def forward(self, X):
        check_image(X, self.in_channels, self.min_size, "densenet", dtype=next(self.parameters()).dtype)
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


# ---------------------------------------------------------------------------------------------
# The paper family (Huang et al., CVPR 2017), written to torchvision's checkpoint format.
#
# Its own layers, not the book's `conv_block`: convolutions without bias (BN follows), as in the
# paper and torchvision, so that parameter counts and state dicts match torchvision's exactly.
# Submodule names (`features.conv0`, `denseblock1.denselayer1.norm1`, `transition1.conv`, `norm5`,
# `classifier`) are torchvision's, so its state dicts load directly.
# ---------------------------------------------------------------------------------------------

STEMS = ("imagenet", "cifar")


class _DenseLayer(nn.Module):
    """One layer of a dense block: it reads the concatenation of all earlier feature maps.

    With ``bottleneck`` (DenseNet-B): BN-ReLU-Conv1x1 to ``bn_size * growth_rate`` channels, then
    BN-ReLU-Conv3x3 to ``growth_rate``. Without: BN-ReLU-Conv3x3 to ``growth_rate``. Either way
    ``conv1`` is the convolution that reads the concatenation.

    Shapes: a list of ``(N, C_j, H, W)`` with ``sum C_j = in_channels`` -> ``(N, growth_rate, H, W)``.
    """

    def __init__(self, in_channels, growth_rate, bottleneck, bn_size, drop_rate, memory_efficient):
        super().__init__()
        width = bn_size * growth_rate if bottleneck else growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1 if bottleneck else 3,
                               padding=0 if bottleneck else 1, bias=False)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(width)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, padding=1, bias=False)
        self.bottleneck = bottleneck
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient
        self._recomputing = False

    def _norm1(self, X):
        if self._recomputing and self.norm1.training:
            # The backward pass recomputes this BN: normalise with the batch statistics as the
            # forward pass did, but update copies of the running averages (the real ones were
            # updated once, in the forward pass), so the recomputation saves the same tensors.
            norm = self.norm1
            return F.batch_norm(X, norm.running_mean.clone(), norm.running_var.clone(), norm.weight, norm.bias,
                                True, norm.momentum if norm.momentum is not None else 0.0, norm.eps)
        return self.norm1(X)

    def _concat_norm_relu_conv(self, *features):
        """What memory-efficient mode recomputes: concatenation + BN + ReLU + conv1."""
        return self.conv1(self.relu1(self._norm1(torch.cat(features, dim=1))))

    @contextlib.contextmanager
    def _recomputation(self):
        self._recomputing = True
        try:
            yield
        finally:
            self._recomputing = False

    def forward(self, features):
        if self.memory_efficient and torch.is_grad_enabled() and any(f.requires_grad for f in features):
            # Keep only the inputs (one copy of each feature map); recompute the concatenation and
            # what follows it in the backward pass (Pleiss et al., 2017).
            out = checkpoint(self._concat_norm_relu_conv, *features, use_reentrant=False,
                             context_fn=lambda: (contextlib.nullcontext(), self._recomputation()))
        else:
            out = self._concat_norm_relu_conv(*features)
        if self.bottleneck:
            out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; layer ``i`` (from 0) reads ``in_channels + i * growth_rate`` channels.

    Shapes: ``(N, in_channels, H, W) -> (N, in_channels + num_layers * growth_rate, H, W)``.
    """

    def __init__(self, num_layers, in_channels, growth_rate, bottleneck, bn_size, drop_rate, memory_efficient):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = _DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck,
                                                     bn_size, drop_rate, memory_efficient)

    def forward(self, X):
        features = [X]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)


class _Transition(nn.Sequential):
    """BN -> ReLU -> Conv 1x1 (no bias) -> AvgPool 2x2/2.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            pool=nn.AvgPool2d(kernel_size=2, stride=2),
        ))


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_compression(compression):
    if not (_is_number(compression) and 0 < compression <= 1):
        raise ValueError(f"compression must be in (0, 1], got {compression!r}")


def _check_drop_rate(drop_rate):
    if not (_is_number(drop_rate) and 0 <= drop_rate < 1):
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")


def _paper_stem(stem, in_channels, num_init_features):
    """The first layers, by name: ``"imagenet"`` (Conv 7x7/2, BN, ReLU, MaxPool 3x3/2) or ``"cifar"`` (Conv 3x3)."""
    if stem == "imagenet":
        return OrderedDict(
            conv0=nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(num_init_features),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
    return OrderedDict(conv0=nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1, bias=False))


class DenseNet(nn.Module):
    """The paper's DenseNet: DenseNet-B (bottleneck), -C (compression) and -BC, ImageNet or CIFAR stem.

    ``features`` holds the stem, the dense blocks, the transitions and the final BN; ``classifier``
    the linear layer after ReLU and global average pooling. Between two blocks a transition maps
    ``m`` channels to ``floor(compression * m)``. Convolutions have no bias; weights are initialised
    as torchvision does (Kaiming-normal convolutions, BN weight 1 and bias 0, linear bias 0).

    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)``.

    Args:
        growth_rate: channels each dense layer adds (``k`` in the paper).
        block_config: number of dense layers in each block.
        num_init_features: channels after the stem (``2k`` for the ImageNet models).
        bottleneck: BN-ReLU-Conv1x1 to ``bn_size * k`` channels before each 3x3 conv (DenseNet-B).
        bn_size: width of the bottleneck, in multiples of ``growth_rate`` (4 in the paper).
        compression: ``theta`` in (0, 1] of the transitions; below 1 is DenseNet-C.
        drop_rate: dropout after each dense layer (0.2 in the paper without data augmentation).
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        stem: ``"imagenet"`` (Conv 7x7/2, BN, ReLU, MaxPool 3x3/2) or ``"cifar"`` (one Conv 3x3).
        memory_efficient: recompute concatenation + BN + ReLU + conv1 in the backward pass
            (``torch.utils.checkpoint``): memory linear instead of quadratic in depth, slower.
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bottleneck=True,
                 bn_size=4, compression=0.5, drop_rate=0.0, num_classes=1000, in_channels=3, stem="imagenet",
                 memory_efficient=False):
        super().__init__()
        for name, value in (("growth_rate", growth_rate), ("num_init_features", num_init_features),
                            ("bn_size", bn_size), ("num_classes", num_classes), ("in_channels", in_channels)):
            check_positive_int(name, value)
        if not isinstance(block_config, (tuple, list)) or not block_config:
            raise ValueError(f"block_config must be a non-empty tuple of layer counts, got {block_config!r}")
        for num_layers in block_config:
            check_positive_int("num_layers (each entry of block_config)", num_layers)
        _check_compression(compression)
        _check_drop_rate(drop_rate)
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")

        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.block_config = tuple(block_config)
        layers = _paper_stem(stem, in_channels, num_init_features)
        num_features = num_init_features
        for i, num_layers in enumerate(block_config, start=1):
            layers[f"denseblock{i}"] = _DenseBlock(num_layers, num_features, growth_rate, bottleneck, bn_size,
                                                   drop_rate, memory_efficient)
            num_features += num_layers * growth_rate
            if i != len(block_config):
                out_features = int(compression * num_features)
                if out_features < 1:
                    raise ValueError(f"compression {compression} leaves no channels after dense block {i} "
                                     f"({num_features} channels x {compression} < 1)")
                layers[f"transition{i}"] = _Transition(num_features, out_features)
                num_features = out_features
        layers[f"norm{len(block_config) + 1}"] = nn.BatchNorm2d(num_features)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(num_features, num_classes)
        self.num_features = num_features

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        self.min_size = min_input_size(self)

    @property
    def memory_efficient(self):
        """Whether the dense layers recompute their concatenation in the backward pass."""
        return all(m.memory_efficient for m in self.modules() if isinstance(m, _DenseLayer))

    @memory_efficient.setter
    def memory_efficient(self, value):
        for m in self.modules():
            if isinstance(m, _DenseLayer):
                m.memory_efficient = bool(value)

    def forward_features(self, X):
        """The feature map before pooling, for use as a backbone.

        Shapes: ``(N, in_channels, H, W) -> (N, num_features, H', W')``; with the ImageNet stem and
        four blocks ``H' = H / 32`` (up to rounding).
        """
        check_image(X, self.in_channels, self.min_size, type(self).__name__, dtype=next(self.parameters()).dtype)
        return F.relu(self.features(X))

    def forward(self, X):
        out = torch.flatten(F.adaptive_avg_pool2d(self.forward_features(X), (1, 1)), 1)
        return self.classifier(out)


def _densenet(growth_rate, block_config, num_init_features, num_classes=1000, memory_efficient=False, **kwargs):
    return DenseNet(growth_rate=growth_rate, block_config=block_config, num_init_features=num_init_features,
                    num_classes=num_classes, memory_efficient=memory_efficient, **kwargs)


def densenet121(num_classes=1000, memory_efficient=False, **kwargs):
    """DenseNet-121 (Table 1 of the paper): k = 32, blocks (6, 12, 24, 16), 7,978,856 parameters."""
    return _densenet(32, (6, 12, 24, 16), 64, num_classes, memory_efficient, **kwargs)


def densenet169(num_classes=1000, memory_efficient=False, **kwargs):
    """DenseNet-169 (Table 1): k = 32, blocks (6, 12, 32, 32)."""
    return _densenet(32, (6, 12, 32, 32), 64, num_classes, memory_efficient, **kwargs)


def densenet201(num_classes=1000, memory_efficient=False, **kwargs):
    """DenseNet-201 (Table 1): k = 32, blocks (6, 12, 48, 32)."""
    return _densenet(32, (6, 12, 48, 32), 64, num_classes, memory_efficient, **kwargs)


def densenet264(num_classes=1000, memory_efficient=False, **kwargs):
    """DenseNet-264 (Table 1): k = 32, blocks (6, 12, 64, 48). torchvision has no such model."""
    return _densenet(32, (6, 12, 64, 48), 64, num_classes, memory_efficient, **kwargs)


def densenet161(num_classes=1000, memory_efficient=False, **kwargs):
    """DenseNet-161: k = 48, 96 initial features, blocks (6, 12, 36, 24); torchvision ships it.

    Not a row of the paper's Table 1 (whose models all have k = 32), but named in its ImageNet training
    section as its largest model: trained with mini-batch 128 for 100 epochs, the learning rate 0.1
    divided by 10 at epochs 30, 60 and 90 (the other ImageNet models: batch 256, 90 epochs, divided at
    epochs 30 and 60)."""
    return _densenet(48, (6, 12, 36, 24), 96, num_classes, memory_efficient, **kwargs)


def cifar_densenet(depth, growth_rate, bottleneck=False, compression=1.0, num_classes=10, **kwargs):
    """The paper's CIFAR/SVHN networks (Table 2): three dense blocks of equal size on 32x32 images.

    ``depth`` counts the convolutions and the classifier: the stem conv, ``n`` layers per block
    (one conv each, or two with ``bottleneck``), two transition convs and the linear layer, so
    ``depth = 3n + 4`` without bottleneck and ``6n + 4`` with. The stem convolution has 16 output
    channels, ``2 * growth_rate`` for DenseNet-BC (bottleneck and compression < 1).

    Shapes: ``(N, 3, H, W) -> (N, num_classes)``.

    Args:
        depth: ``L`` in the paper, e.g. 40 or 100 (DenseNet), 100, 190 or 250 (DenseNet-BC).
        growth_rate: ``k`` in the paper (12, 24 or 40 in Table 2).
        bottleneck: 1x1 bottleneck convolutions (DenseNet-B).
        compression: ``theta`` of the transitions (0.5 for DenseNet-C and -BC).
        num_classes: 10 for CIFAR-10 and SVHN, 100 for CIFAR-100.
        **kwargs: passed to :class:`DenseNet` (``drop_rate``, ``in_channels``, ``memory_efficient``).
    """
    check_positive_int("depth", depth)
    convs_per_layer = 2 if bottleneck else 1
    if depth < 3 * convs_per_layer + 4 or (depth - 4) % (3 * convs_per_layer):
        formula = "6n + 4 (with bottleneck)" if bottleneck else "3n + 4 (without bottleneck)"
        n = max(1, round((depth - 4) / (3 * convs_per_layer)))
        fits = sorted({3 * convs_per_layer * m + 4 for m in (n, n + 1) if m >= 1})
        raise ValueError(f"depth must be {formula} for a positive integer n, got {depth}; "
                         f"the nearest that fit are {' and '.join(map(str, fits))}")
    num_layers = (depth - 4) // (3 * convs_per_layer)
    check_positive_int("growth_rate", growth_rate)
    _check_compression(compression)
    num_init_features = 2 * growth_rate if bottleneck and compression < 1 else 16
    return DenseNet(growth_rate=growth_rate, block_config=(num_layers,) * 3, num_init_features=num_init_features,
                    bottleneck=bottleneck, compression=compression, num_classes=num_classes, stem="cifar",
                    **kwargs)


# Old checkpoints (torchvision's published ImageNet weights among them) were saved when module
# names could contain dots: their dense layers have `norm.1`, `relu.1`, `conv.1`, `norm.2`, ... where
# the modules are now `norm1`, `conv1`, `norm2`, ... This pattern finds those keys.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def load_torchvision_state_dict(net, state_dict):
    """Load a torchvision DenseNet state dict, new or old format, into ``net``; returns ``net``.

    Old keys such as ``features.denseblock1.denselayer1.norm.1.weight`` become ``...norm1.weight``.
    Old checkpoints also predate BN's ``num_batches_tracked`` counter; where it is missing it
    starts at 0, as ``BatchNorm2d`` does for them. Anything else that does not fit (missing or
    unexpected keys, different shapes) is a ``ValueError`` naming it.
    """
    remapped = OrderedDict()
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        remapped[match.group(1) + match.group(2) if match else key] = value
    for key, value in net.state_dict().items():
        norm = key.removesuffix(".num_batches_tracked")
        if norm != key and key not in remapped and norm + ".weight" in remapped:
            remapped[key] = torch.zeros_like(value)
    check_state_dict_fits(net, remapped, source="torchvision state dict")
    net.load_state_dict(remapped)
    return net
