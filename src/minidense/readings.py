"""Recorded runs read two more ways: each run's four evaluations as variants of one comparison, and how far
a run's test accuracy falls from one epoch to the next.

A run of a recipe with an average of the weights records its test accuracy four ways (``test_acc_last``,
``test_acc_last_tta``, ``test_acc_ema``, ``test_acc_ema_tta``): the same weights, read with or without the
average and test-time augmentation. :func:`by_evaluation` turns them into variants, so that
:func:`minidense.summarize` pairs them seed by seed like any other comparison.
"""

import json

__all__ = ["EVALUATIONS", "by_evaluation", "largest_fall", "largest_falls"]

EVALUATIONS = {
    "test_acc_last": "last weights",
    "test_acc_last_tta": "last weights + TTA",
    "test_acc_ema": "averaged weights",
    "test_acc_ema_tta": "averaged weights + TTA",
}


def by_evaluation(runs):
    """The runs once per way of evaluating them, as a comparison table.

    Args:
        runs: rows of a ``results.csv`` of one recipe (columns ``seed`` and the four ``test_acc_*``
            columns of :data:`EVALUATIONS`), one row per seed.

    Returns:
        A DataFrame with columns ``variant`` (the way, e.g. ``"last weights + TTA"``), ``seed`` and
        ``test_acc``: four rows per run, the input :func:`minidense.summarize` takes.
    """
    import pandas as pd

    missing = [column for column in ("seed", *EVALUATIONS) if column not in runs.columns]
    if missing:
        raise ValueError(f"by_evaluation needs the columns {', '.join(missing)}; the runs of a recipe with "
                         "an average of the weights record them")
    return pd.concat([pd.DataFrame({"variant": way, "seed": runs["seed"].to_numpy(),
                                    "test_acc": runs[column].to_numpy()}) for column, way in EVALUATIONS.items()],
                     ignore_index=True)


def largest_fall(accuracies):
    """The largest drop from one epoch to the next, ``max(a[e] - a[e + 1])``; 0.0 where it never drops.

    >>> round(largest_fall([0.82, 0.72, 0.89, 0.86]), 2)
    0.1
    """
    return max([0.0, *(a - b for a, b in zip(accuracies, accuracies[1:]))])


def largest_falls(table, metric="test_acc"):
    """For each variant of a comparison, the largest fall of ``metric`` from one epoch to the next over
    all of its runs.

    Args:
        table: rows of a ``results.csv`` (columns ``variant`` and ``epochs``, each run's per-epoch records
            as JSON or as a list of dicts).
        metric: the per-epoch value to follow.

    Returns:
        A Series indexed by variant, in the table's order: the largest fall (0.0 for a variant whose
        ``metric`` never falls).
    """
    import pandas as pd

    falls = {}
    for row in table.itertuples(index=False):
        epochs = json.loads(row.epochs) if isinstance(row.epochs, str) else row.epochs
        fall = largest_fall([record[metric] for record in epochs])
        falls[row.variant] = max(fall, falls.get(row.variant, 0.0))
    return pd.Series(falls, name=f"largest fall of {metric}", dtype=float)
