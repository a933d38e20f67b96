"""Statistics of a multi-seed comparison: mean ± std per variant, paired differences with 95% intervals.

A comparison's table (:func:`minidense.compare`) holds one row per ``(variant, seed)``. For a
variant ``v`` against a baseline ``b`` the seeds pair the runs: both started from the same initial
weights and saw the same data order, so the difference ``d_s = metric(v, s) - metric(b, s)`` cancels
what the seed alone decides. :func:`summarize` gives the mean of each and of the differences with a
Student's t interval; :func:`format_summary` prints it; :mod:`minidense.verdicts` reads an interval.
"""

import math

__all__ = ["summarize", "format_summary"]


def _t_quantile(n):
    """The 97.5% quantile of Student's t with ``n - 1`` degrees of freedom (NaN for n < 2)."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def _describe(values):
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    half = _t_quantile(n) * std / math.sqrt(n) if n > 1 else float("nan")
    return dict(n=n, mean=mean, std=std, ci_low=mean - half, ci_high=mean + half)


def summarize(table, metric="test_acc", baseline=None):
    """Mean ± std per variant, and each variant's paired difference from a baseline with a 95% CI.

    For variant ``v`` and baseline ``b`` the differences ``d_s = metric(v, s) - metric(b, s)`` are
    taken over the seeds ``s`` both have; the interval is
    ``mean(d) ± t_{0.975, n-1} · std(d) / sqrt(n)`` (Student's t, ``n`` seeds, sample std).
    The same formula gives each variant's own interval for its mean.

    Args:
        table: the output of :func:`compare` (at least ``variant``, ``seed`` and ``metric``).
        metric: the column to summarise (``test_acc``, ``wall_seconds``, ...).
        baseline: the variant others are compared with (default: the first in the table).

    Returns:
        A DataFrame with columns ``kind`` (``"variant"`` or ``"difference"``), ``variant``
        (for a difference ``"max - avg"``-style names), ``metric, n, mean, std, ci_low, ci_high``.
    """
    import pandas as pd

    for column in ("variant", "seed", metric):
        if column not in table.columns:
            raise ValueError(f"summarize needs a {column!r} column; the table has {', '.join(table.columns)}")
    names = list(dict.fromkeys(table["variant"]))
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not a variant of the table ({', '.join(names)})")
    by_variant = {name: table[table["variant"] == name].set_index("seed")[metric].astype(float) for name in names}
    rows = [dict(kind="variant", variant=name, metric=metric, **_describe(by_variant[name])) for name in names]
    for name in names:
        if name == baseline:
            continue
        diff = (by_variant[name] - by_variant[baseline]).dropna()  # aligned on the seed
        rows.append(dict(kind="difference", variant=f"{name} - {baseline}", metric=metric, **_describe(diff)))
    return pd.DataFrame(rows, columns=["kind", "variant", "metric", "n", "mean", "std", "ci_low", "ci_high"])


def format_summary(summary):
    """The summary as text: ``mean ± std`` per variant, differences with their 95% CI."""
    lines = []
    for row in summary.itertuples(index=False):
        if row.kind == "variant":
            lines.append(f"{row.variant}: {row.metric} {row.mean:.4f} ± {row.std:.4f} (mean ± std, {row.n} seeds)")
        else:
            lines.append(f"{row.variant}: {row.mean:+.4f}, 95% CI [{row.ci_low:+.4f}, {row.ci_high:+.4f}] "
                         f"(paired over {row.n} seeds)")
    return "\n".join(lines)
