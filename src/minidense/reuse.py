"""Feature reuse: the paper's Figure 5, how strongly each layer reads each earlier layer's features."""

import math

import torch
from torch import nn

from minidense.blocks import DenseBlock

__all__ = ["feature_reuse"]


def _first_weighted_layer(module):
    """The first convolution or linear layer inside ``module`` (``None`` if there is none)."""
    return next((m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def _dense_blocks(net):
    """For each dense block: its input channels, its growth rate, the convolutions that read its
    concatenation (in order), and the layer that reads the block's output."""
    from minidense.models import DenseNet, _DenseBlock

    if isinstance(net, DenseNet):
        stages = [*net.features.children(), net.classifier]
        blocks = [(i, [layer.conv1 for layer in stage.values()], net.growth_rate)
                  for i, stage in enumerate(stages) if isinstance(stage, _DenseBlock)]
    else:
        stages = list(net.children())
        blocks = [(i, [conv_block[-1] for conv_block in stage.net], stage.growth_rate)
                  for i, stage in enumerate(stages) if isinstance(stage, DenseBlock)]
    if not blocks:
        raise ValueError(f"feature_reuse needs a DenseNet (minidense.densenet() or minidense.DenseNet), "
                         f"got a {type(net).__name__} without dense blocks")
    result = []
    for i, readers, growth_rate in blocks:
        after = next(_first_weighted_layer(m) for m in stages[i + 1:] if _first_weighted_layer(m) is not None)
        result.append((readers[0].in_channels, growth_rate, readers, after))
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
        for in_channels, growth_rate, readers, last in _dense_blocks(net):
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
