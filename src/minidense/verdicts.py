"""What a paired comparison allows one to say: each difference's 95% interval read as a verdict.

:func:`minidense.summarize` gives, for each variant against a baseline, the mean paired difference and
its 95% interval. A difference is claimed only where the interval excludes 0; an interval that contains
0 leaves the sign open; an interval of zero width (one seed, or every seed the same difference) says
nothing about the spread, so it gives no verdict either.
"""

__all__ = ["read_differences", "verdict"]

_NO_SPREAD = 1e-9  # a std below this is float rounding of identical differences (~1e-17), not a spread


def _says(variant, n, std, ci_low, ci_high):
    """The verdict on one difference ``"A - B"``: A higher, A lower, not told apart, or no interval."""
    first, _, second = variant.partition(" - ")
    if n < 2 or not std > _NO_SPREAD:
        return "no verdict: fewer than two seeds, or every seed gave the same difference"
    if ci_low > 0:
        return f"{first} higher than {second}"
    if ci_high < 0:
        return f"{first} lower than {second}"
    return "not told apart: the interval contains 0"


def read_differences(summary):
    """The difference rows of a summary, each with its interval's half-width and what it allows one to say.

    Args:
        summary: the output of :func:`minidense.summarize` (columns ``kind, variant, metric, n, mean, std,
            ci_low, ci_high``).

    Returns:
        A DataFrame, one row per difference: ``variant, metric, n, mean, std, ci_low, ci_high, half_width,
        says`` (``std`` is the spread of the paired differences, ``s_d``).
    """
    missing = {"kind", "variant", "metric", "n", "mean", "std", "ci_low", "ci_high"} - set(summary.columns)
    if missing:
        raise ValueError("read_differences needs the output of summarize; "
                         f"missing columns: {', '.join(sorted(missing))}")
    rows = summary[summary["kind"] == "difference"].reset_index(drop=True)
    says = [_says(r.variant, r.n, r.std, r.ci_low, r.ci_high) for r in rows.itertuples(index=False)]
    return rows.assign(half_width=(rows["ci_high"] - rows["ci_low"]) / 2, says=says)[
        ["variant", "metric", "n", "mean", "std", "ci_low", "ci_high", "half_width", "says"]]


def verdict(summary):
    """One line per difference of a summary: the mean, its 95% interval and the verdict, e.g.
    ``"max - avg: +0.0006, 95% CI [-0.0000, +0.0012] over 4 paired seeds -> not told apart: ..."``."""
    return "\n".join(f"{r.variant}: {r.mean:+.4f}, 95% CI [{r.ci_low:+.4f}, {r.ci_high:+.4f}] over {r.n} paired "
                     f"seeds -> {r.says}" for r in read_differences(summary).itertuples(index=False))
