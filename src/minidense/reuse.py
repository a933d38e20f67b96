"""Feature reuse: the paper's Figure 5, how strongly each layer reads each earlier layer's features."""

import math

import torch
from torch import nn

from minidense.blocks import DenseBlock

__all__ = ["feature_reuse", "as_matrix", "reuse_checks", "reuse_verdicts", "chance_least_read"]


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


CHECKS = ("(a) layers spread", "(b) transition read least", "(c) transition spreads",
          "(d) classifier on final maps")


def as_matrix(matrix):
    """A feature-reuse matrix as a float tensor: a tensor passes through; nested lists from JSON, with
    ``None`` for no connection, become a tensor with ``nan`` there."""
    if isinstance(matrix, torch.Tensor):
        return matrix
    return torch.tensor([[math.nan if v is None else v for v in row] for row in matrix], dtype=torch.float32)


def _sources(column):
    """The entries of a column that are connections (not ``nan``)."""
    return column[~column.isnan()]


def _layer_columns(blocks):
    """The columns of the layers with at least two sources (layers 2 .. L of each block)."""
    return [_sources(m[:, t]) for m in blocks for t in range(1, len(m) - 1)]


def reuse_checks(matrices, half=0.5):
    """The paper's four readings of its Figure 5 as counts of the columns that pass.

    Each column is first divided by its largest entry (1 marks the source the target reads most).
    (a) every layer with two sources or more: every source at least ``half``; (b) the layers 2 .. L of
    blocks 2 onwards: source 0 (the transition's output) is the smallest of its column; (c) each
    transition's column: every source at least ``half``; (d) the classifier's column rises at each of
    its steps from source ``s`` to ``s + 1``. A check *holds* when all its columns (steps) pass.

    Args:
        matrices: one ``(L + 1, L + 1)`` matrix per dense block, from :func:`feature_reuse` or a record
            (nested lists, ``None`` for no connection); at least two blocks.
        half: the threshold of (a) and (c), in (0, 1].

    Returns:
        ``{check: (passed, out_of, beside)}`` for the four names in :data:`CHECKS`. ``beside`` is the
        smallest normalised entry for (a) and (c), source 0 over the mean of the other sources
        (averaged over the columns) for (b), and the last source over the block input for (d).
    """
    if not 0 < half <= 1:
        raise ValueError(f"half must be in (0, 1], got {half!r}")
    blocks = [as_matrix(m) for m in matrices]
    if len(blocks) < 2:
        raise ValueError(f"reuse_checks needs at least two dense blocks (a transition between them), got {len(blocks)}")
    blocks = [m / m.nan_to_num(0.0).amax(dim=0) for m in blocks]

    def spread(columns):
        return (sum(bool(c.min() >= half) for c in columns), len(columns), min(c.min().item() for c in columns))

    after_transition = _layer_columns(blocks[1:])
    least = [c.argmin().item() == 0 for c in after_transition]
    ratio = torch.stack([c[0] / c[1:].mean() for c in after_transition]).mean().item()
    classifier = _sources(blocks[-1][:, -1])
    steps = classifier.diff() > 0
    found = (spread(_layer_columns(blocks)), (sum(least), len(least), ratio),
             spread([_sources(m[:, -1]) for m in blocks[:-1]]),
             (int(steps.sum()), len(steps), (classifier[-1] / classifier[0]).item()))
    return dict(zip(CHECKS, found))


def reuse_verdicts(networks, half=0.5):
    """A table of :func:`reuse_checks`, one row per network: ``"passed/out of (beside): holds"`` or
    ``"... does not hold"`` per check.

    Args:
        networks: ``{name: matrices}``.
        half: the threshold of checks (a) and (c).

    Returns:
        A ``pandas.DataFrame``, rows the names, columns the checks.
    """
    import pandas as pd

    def say(passed, out_of, beside):
        return f"{passed}/{out_of} ({beside:.3f}): " + ("holds" if passed == out_of else "does not hold")

    rows = {name: {check: say(*found) for check, found in reuse_checks(ms, half).items()}
            for name, ms in networks.items()}
    return pd.DataFrame(rows).T


def chance_least_read(matrices):
    """How often check (b) would pass by chance, were the order within each column random.

    In column ``t`` (layer ``t + 1``, with ``t + 1`` sources) source 0 is then the smallest with chance
    ``1 / (t + 1)``, independently per column; the count over blocks 2 onwards is a sum of such coin
    flips, whose distribution is built column by column.

    Args:
        matrices: one matrix per dense block, as for :func:`reuse_checks`.

    Returns:
        ``(expected, p_value)``: the expected count, and the chance of a count at least the one
        :func:`reuse_checks` finds in ``matrices``.
    """
    passed = reuse_checks(matrices)["(b) transition read least"][0]
    chances = [1 / (t + 1) for m in matrices[1:] for t in range(1, len(m) - 1)]
    distribution = torch.ones(1, dtype=torch.float64)  # distribution[k]: chance of k columns so far
    for q in chances:
        zero = distribution.new_zeros(1)
        distribution = torch.cat([distribution, zero]) * (1 - q) + torch.cat([zero, distribution]) * q
    return sum(chances), distribution[passed:].sum().item()
