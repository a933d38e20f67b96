"""Verdicts: a paired difference is claimed only where its 95% interval excludes 0."""

import pandas as pd
import pytest

import minidense


def _table(differences):
    """Two variants over len(differences) seeds: b scores 0.5, a scores 0.5 + d_s."""
    rows = []
    for seed, d in enumerate(differences):
        rows += [dict(variant="b", seed=seed, test_acc=0.5), dict(variant="a", seed=seed, test_acc=0.5 + d)]
    return pd.DataFrame(rows)


def _says(differences):
    summary = minidense.summarize(_table(differences), baseline="b")
    return minidense.read_differences(summary)["says"].item()


def test_an_interval_above_zero_says_higher():
    # mean 0.020, std 0.001, three seeds: half-width t(0.975, 2) * 0.001 / sqrt(3) = 4.303 * 0.000577 = 0.0025
    assert _says([0.019, 0.020, 0.021]) == "a higher than b"


def test_an_interval_below_zero_says_lower():
    assert _says([-0.019, -0.020, -0.021]) == "a lower than b"


def test_an_interval_across_zero_tells_them_apart_not():
    assert _says([-0.01, 0.0, 0.02]).startswith("not told apart")


@pytest.mark.parametrize("differences", [[0.001, 0.001, 0.001], [0.01]])
def test_identical_differences_or_one_seed_give_no_verdict(differences):
    assert _says(differences).startswith("no verdict")


def test_verdict_prints_one_line_per_difference_with_its_interval():
    line = minidense.verdict(minidense.summarize(_table([0.019, 0.020, 0.021]), baseline="b"))
    assert line.startswith("a - b: +0.0200, 95% CI [+0.0175, +0.0225] over 3 paired seeds -> a higher than b")


def test_a_table_that_is_not_a_summary_is_a_clear_error():
    with pytest.raises(ValueError, match="output of summarize"):
        minidense.read_differences(_table([0.01, 0.02]))


def test_read_differences_keeps_the_spread_and_the_half_width():
    reading = minidense.read_differences(minidense.summarize(_table([0.019, 0.020, 0.021]), baseline="b")).iloc[0]
    assert reading["std"] == pytest.approx(0.001)
    assert reading["half_width"] == pytest.approx(4.303 * 0.001 / 3**0.5, abs=1e-6)
