"""Connectionist temporal classification (CTC) for rows of garments: the loss, greedy decoding, the scores.

A reader's network gives, for each of its ``T`` time steps (columns of the image), scores over the
ten classes and a *blank* (index :data:`BLANK` = 10). An *alignment* is one symbol per time step;
it reads as the sequence left after merging repeated symbols and then dropping blanks, so that
``- 3 3 - 3 -`` reads ``3 3``. CTC's loss is minus the log of the total probability of all alignments
that read the label (:func:`ctc_loss`, PyTorch's ``nn.CTCLoss``); greedy decoding reads the most
likely symbol of each step (:func:`greedy_decode`).

Labels are ``(N, max_items)`` int64 rows of classes padded with ``-1`` (as :mod:`minidense.rows` serves them).
"""

import torch
from torch.nn import functional as F

__all__ = ["BLANK", "ctc_loss", "greedy_decode", "edit_distance", "row_scores", "rows_correct"]

BLANK = 10  # the blank symbol, after the ten classes


def _check_logits(logits):
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[-1] != BLANK + 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"a reader's output must be (N, T, {BLANK + 1}) scores (ten classes and the blank), "
                         f"got {shape}")


def ctc_loss(logits, y):
    """The mean CTC loss of ``logits (N, T, 11)`` for labels ``y (N, S)`` padded with -1 -> a scalar.

    Each row's loss is divided by its number of garments before the mean over rows (``nn.CTCLoss``'s
    ``reduction="mean"``). A label that no alignment of ``T`` steps can read raises ``ValueError``.
    """
    _check_logits(logits)
    lengths = (y >= 0).sum(1)
    repeats = ((y[:, 1:] == y[:, :-1]) & (y[:, 1:] >= 0)).sum(1)
    needed = int((lengths + repeats).max()) if len(y) else 0
    if needed > logits.shape[1]:
        raise ValueError(f"a label of {needed} symbols (garments plus a blank between equal neighbours) cannot "
                         f"be read from {logits.shape[1]} time steps: the reader needs at least {needed}")
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, N, 11), as nn.CTCLoss wants
    input_lengths = torch.full((len(y),), logits.shape[1], dtype=torch.long)
    return F.ctc_loss(log_probs, y.clamp(min=0), input_lengths, lengths.cpu(), blank=BLANK)


def greedy_decode(logits):
    """The most likely symbol of each time step, repeats merged, blanks dropped.

    Shapes: ``(N, T, 11)`` -> int64 ``(N, T)``: each row's classes from the left, then -1.
    """
    _check_logits(logits)
    best = logits.argmax(-1)  # (N, T)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = new & (best != BLANK)
    position = keep.cumsum(1) - 1
    decoded = torch.full_like(best, -1)
    rows = torch.arange(len(best), device=best.device)[:, None].expand_as(best)
    decoded[rows[keep], position[keep]] = best[keep]
    return decoded


def edit_distance(a, b):
    """The fewest insertions, deletions and substitutions that turn sequence ``a`` into ``b`` (Levenshtein)."""
    previous = list(range(len(b) + 1))
    for i, item in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (item != other)))
        previous = current
    return previous[-1]


def _sequences(padded):
    return [[int(v) for v in row if v >= 0] for row in padded.tolist()]


def row_scores(decoded, y):
    """``(rows read exactly, item errors, items)`` of decoded rows against labels, both padded with -1.

    Item errors are the edit distances summed over rows; item error rate = item errors / items.
    """
    predicted, truth = _sequences(decoded), _sequences(y)
    exact = sum(p == t for p, t in zip(predicted, truth))
    errors = sum(edit_distance(p, t) for p, t in zip(predicted, truth))
    return exact, errors, sum(len(t) for t in truth)


def rows_correct(logits, y):
    """How many rows the greedy reading gets exactly right: ``(N, T, 11)`` logits, ``(N, S)`` labels -> int64 ``()``."""
    decoded = greedy_decode(logits)
    width = max(decoded.shape[1], y.shape[1])
    decoded = F.pad(decoded, (0, width - decoded.shape[1]), value=-1)
    y = F.pad(y, (0, width - y.shape[1]), value=-1)
    return (decoded == y).all(1).sum()
