"""Feature reuse: the paper's Figure 5, how strongly each layer reads each earlier layer's features."""

import math

import torch
from torch import nn

from minidense.blocks import DenseBlock

__all__ = ["feature_reuse"]


def _blocks_and_readers(net):
    """For each dense block: its input channels, its growth rate, the convolutions that read its concatenation, in order, then the
    layer that reads the block's output (a transition's 1x1 conv, or the classifier)."""
    from minidense.models import DenseNet, _DenseBlock, _Transition

    if isinstance(net, DenseNet):
        modules = list(net.features.children()) + [net.classifier]
        is_block = lambda m: isinstance(m, _DenseBlock)  # noqa: E731
        readers = lambda blk: [layer.conv1 for layer in blk.values()]  # noqa: E731
        next_reader = lambda m: m.conv if isinstance(m, _Transition) else m  # noqa: E731
        block_input = lambda blk: next(iter(blk.values())).conv1.in_channels  # noqa: E731
        growth_rate = lambda blk: net.growth_rate  # noqa: E731
    else:
        modules = list(net.children())
        is_block = lambda m: isinstance(m, DenseBlock)  # noqa: E731
        readers = lambda blk: [conv_block[-1] for conv_block in blk.net]  # noqa: E731
        next_reader = lambda m: next(c for c in m.modules() if isinstance(c, (nn.Conv2d, nn.Linear)))  # noqa: E731
        block_input = lambda blk: blk.in_channels  # noqa: E731
        growth_rate = lambda blk: blk.growth_rate  # noqa: E731
    result = []
    for i, module in enumerate(modules):
        if is_block(module):
            after = next(m for m in modules[i + 1:]
                         if any(isinstance(c, (nn.Conv2d, nn.Linear)) for c in m.modules()))
            result.append((block_input(module), growth_rate(module), readers(module), next_reader(after)))
    return result


def feature_reuse(net):
    """The paper's Figure 5: average absolute weight from each source layer to each target layer.

    In dense block ``b``, source ``s = 0`` is the block's input (the previous transition's output,
    or the stem's) and source ``s >= 1`` is the ``growth_rate`` channels that layer ``s`` added.
    Target ``t = 1 .. L`` is the ``t``-th layer's convolution that reads the concatenation (the 3x3
    conv of the book's network, ``conv1`` of the paper's layers); target ``L + 1`` is what reads the
    block's output: the next transition's 1x1 conv, or the classifier after the last block.
    Entry ``[s, t - 1]`` is the mean of ``|W|`` over the input channels of source ``s`` (so wide
    and narrow sources compare: the paper's L1 norm normalised by the number of input feature
    maps); ``nan`` where ``t <= s`` (no connection).

    Works for the book's :func:`minidense.densenet` and the paper's :class:`minidense.DenseNet`.

    Returns:
        A list with one ``(L + 1, L + 1)`` float tensor per dense block (rows: sources,
        columns: targets).
    """
    matrices = []
    with torch.no_grad():
        for in_channels, growth_rate, readers, last in _blocks_and_readers(net):
            num_layers = len(readers)
            matrix = torch.full((num_layers + 1, num_layers + 1), math.nan)
            for t, reader in enumerate([*readers, last], start=1):
                weight = reader.weight.detach().abs().float()
                per_channel = weight.mean(dim=[d for d in range(weight.dim()) if d != 1])
                bounds = [0, in_channels] + [in_channels + s * growth_rate for s in range(1, t)]
                for s in range(t):
                    matrix[s, t - 1] = per_channel[bounds[s]:bounds[s + 1]].mean()
            matrices.append(matrix)
    return matrices
