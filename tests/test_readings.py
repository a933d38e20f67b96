"""Readings of recorded runs: four evaluations as variants, and the largest fall between epochs."""

import json

import pandas as pd
import pytest

import minidense


def _runs():
    """Two seeds of one recipe, each evaluated four ways."""
    return pd.DataFrame({"variant": ["book", "book"], "seed": [0, 1],
                         "test_acc_last": [0.80, 0.81], "test_acc_last_tta": [0.82, 0.83],
                         "test_acc_ema": [0.84, 0.85], "test_acc_ema_tta": [0.86, 0.87]})


def test_by_evaluation_gives_each_way_as_a_variant_seed_by_seed():
    table = minidense.by_evaluation(_runs())
    assert len(table) == 8
    tta = table[table["variant"] == "last weights + TTA"]
    assert tta["seed"].tolist() == [0, 1] and tta["test_acc"].tolist() == [0.82, 0.83]


def test_by_evaluation_pairs_in_summarize():
    summary = minidense.summarize(minidense.by_evaluation(_runs()), baseline="last weights")
    difference = summary[summary["variant"] == "averaged weights - last weights"].iloc[0]
    assert difference["mean"] == pytest.approx(0.04)  # 0.84 - 0.80 and 0.85 - 0.81


def test_by_evaluation_names_the_missing_columns():
    with pytest.raises(ValueError, match="test_acc_ema_tta"):
        minidense.by_evaluation(_runs().drop(columns="test_acc_ema_tta"))


@pytest.mark.parametrize("accuracies, fall", [([0.82, 0.72, 0.89, 0.86], 0.10), ([0.5, 0.6, 0.7], 0.0), ([0.9], 0.0)])
def test_largest_fall(accuracies, fall):
    assert minidense.largest_fall(accuracies) == pytest.approx(fall)


def test_largest_falls_takes_the_largest_over_the_runs_of_a_variant():
    def run(variant, accuracies):
        return {"variant": variant, "epochs": json.dumps([{"test_acc": a} for a in accuracies])}

    table = pd.DataFrame([run("d2l", [0.8, 0.7, 0.9]), run("d2l", [0.8, 0.6]), run("book", [0.8, 0.9])])
    falls = minidense.largest_falls(table)
    assert falls.index.tolist() == ["d2l", "book"]
    assert falls["d2l"] == pytest.approx(0.2) and falls["book"] == 0.0
