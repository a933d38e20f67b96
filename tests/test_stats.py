"""minidense.stats: mean ± std per variant and paired differences with their 95% intervals, by hand."""

import math

import pandas as pd
import pytest

from minidense.stats import format_summary, summarize


def test_summary_maths_on_a_table_worked_by_hand():
    # test accuracy of two variants over three seeds
    table = pd.DataFrame({"variant": ["avg"] * 3 + ["max"] * 3, "seed": [0, 1, 2, 2, 1, 0],
                          "test_acc": [0.80, 0.82, 0.84, 0.81, 0.83, 0.79]})
    summary = summarize(table).set_index("variant")
    # avg: mean 0.82, deviations -0.02, 0, 0.02 -> std sqrt(0.0008 / 2) = 0.02
    assert summary.loc["avg", "mean"] == pytest.approx(0.82)
    assert summary.loc["avg", "std"] == pytest.approx(0.02)
    assert summary.loc["max", "mean"] == pytest.approx(0.81)
    assert summary.loc["max", "std"] == pytest.approx(0.02)
    # paired on the seed (max rows are listed in another order): max - avg = -0.01, +0.01, -0.03
    # mean -0.01; deviations 0, 0.02, -0.02 -> std 0.02; standard error 0.02 / sqrt(3) = 0.011547;
    # t(0.975, 2 degrees of freedom) = 4.302653 -> half-width 0.049683
    diff = summary.loc["max - avg"]
    assert (diff["kind"], diff["n"]) == ("difference", 3)
    assert diff["mean"] == pytest.approx(-0.01)
    assert diff["std"] == pytest.approx(0.02)
    assert diff["ci_low"] == pytest.approx(-0.01 - 0.049683, abs=1e-6)
    assert diff["ci_high"] == pytest.approx(-0.01 + 0.049683, abs=1e-6)
    # the variant's own interval uses the same formula: 0.82 ± 0.049683
    assert summary.loc["avg", "ci_low"] == pytest.approx(0.82 - 0.049683, abs=1e-6)


def test_summary_pairs_only_seeds_both_variants_have():
    table = pd.DataFrame({"variant": ["a", "a", "b"], "seed": [0, 1, 1], "test_acc": [0.5, 0.6, 0.7]})
    diff = summarize(table, baseline="a").set_index("variant").loc["b - a"]
    assert diff["n"] == 1 and diff["mean"] == pytest.approx(0.1)
    assert math.isnan(diff["std"]) and math.isnan(diff["ci_low"])  # one pair: no spread, no interval


def test_summary_errors_in_the_users_terms():
    table = pd.DataFrame({"variant": ["a"], "seed": [0], "test_acc": [0.5]})
    with pytest.raises(ValueError, match="needs a 'test_loss' column"):
        summarize(table, metric="test_loss")
    with pytest.raises(ValueError, match="baseline 'c' is not a variant"):
        summarize(table, baseline="c")


def test_two_seeds_give_an_interval_of_t_with_one_degree_of_freedom():
    table = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "test_acc": [0.5, 0.7, 0.6, 0.9]})
    summary = summarize(table).set_index("variant")
    # b - a: 0.1 and 0.2, mean 0.15, std sqrt(0.005) = 0.070711, standard error 0.05;
    # t(0.975, 1 degree of freedom) = 12.706205 -> half-width 0.635310
    diff = summary.loc["b - a"]
    assert diff["std"] == pytest.approx(0.070711, abs=1e-6)
    assert (diff["ci_low"], diff["ci_high"]) == (pytest.approx(0.15 - 0.635310, abs=1e-6),
                                                 pytest.approx(0.15 + 0.635310, abs=1e-6))
    # a alone: 0.5 and 0.7, mean 0.6, std 0.141421, interval 0.6 ± 12.706205 * 0.1
    assert summary.loc["a", "ci_high"] == pytest.approx(0.6 + 1.2706205, abs=1e-6)


def test_the_summary_as_text():
    table = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "test_acc": [0.5, 0.7, 0.6, 0.9]})
    assert format_summary(summarize(table)).splitlines() == [
        "a: test_acc 0.6000 ± 0.1414 (mean ± std, 2 seeds)",
        "b: test_acc 0.7500 ± 0.2121 (mean ± std, 2 seeds)",
        "b - a: +0.1500, 95% CI [-0.4853, +0.7853] (paired over 2 seeds)",
    ]
