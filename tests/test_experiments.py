"""The experiment runner: paired seeds, resuming, the summary's maths, and bad ``--vary`` specs."""

import math

import pandas as pd
import pytest
import torch

from minidense.__main__ import main
from minidense.experiments import FashionMNISTRun, compare, epochs_long
from minidense.grids import grid, parse_vary
from minidense.options import format_value
from minidense.stats import summarize

TINY = dict(growth_rate=8, convs_per_block=(2, 2), resize=32, num_train=256, num_test=256, batch_size=64,
            num_epochs=1, precise_bn=2)


def test_grid_names_every_combination_in_order():
    variants = grid(transition_pool=["avg", "max"], convs_per_block=[(2, 2), (4, 4)])
    assert list(variants) == ["transition_pool=avg convs_per_block=2-2", "transition_pool=avg convs_per_block=4-4",
                              "transition_pool=max convs_per_block=2-2", "transition_pool=max convs_per_block=4-4"]
    assert variants["transition_pool=max convs_per_block=2-2"] == {"transition_pool": "max",
                                                                   "convs_per_block": (2, 2)}


def test_parse_vary_reads_each_kind_of_value():
    axes = parse_vary(["transition_pool=avg,max", "growth_rate=16, 32", "convs_per_block=2-2,4-4-4",
                       "schedule=none,onecycle", "lr=0.1", "nesterov=true"])
    assert axes == {"transition_pool": ["avg", "max"], "growth_rate": [16, 32],
                    "convs_per_block": [(2, 2), (4, 4, 4)], "schedule": [None, "onecycle"], "lr": [0.1],
                    "nesterov": [True]}


class Recording(FashionMNISTRun):
    """The default runner, remembering each run's initial weights and data order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights, self.orders = {}, {}

    def __call__(self, settings, seed):
        net = self.build(settings, seed)
        train_iter, _ = self.data(settings, seed)
        key = (settings["transition_pool"], seed)
        self.weights[key] = {k: v.clone() for k, v in net.state_dict().items()}
        self.orders[key] = [train_iter.order(epoch) for epoch in range(2)]
        return super().__call__(settings, seed)


def test_paired_seeds_give_identical_weights_and_data_order(data_root, tmp_path):
    run = Recording("smoke", device="cpu", root=data_root)
    variants = grid(transition_pool=["avg", "max"])
    for settings in variants.values():
        settings.update(TINY)
    table = compare(variants, seeds=(0, 1), run_one=run, out=tmp_path, verbose=False)

    assert len(table) == 4 and set(table["transition_pool"]) == {"avg", "max"}
    for seed in (0, 1):  # same seed: the same weights and order, whatever the pooling
        torch.testing.assert_close(run.weights[("avg", seed)], run.weights[("max", seed)], rtol=0, atol=0)
        for order_avg, order_max in zip(run.orders[("avg", seed)], run.orders[("max", seed)]):
            assert torch.equal(order_avg, order_max)
    # another seed: other weights and another order
    first_conv = "stem.0.weight"
    assert not torch.equal(run.weights[("avg", 0)][first_conv], run.weights[("avg", 1)][first_conv])
    assert not torch.equal(run.orders[("avg", 0)][0], run.orders[("avg", 1)][0])
    # the network really was the tiny one: 2 + 2 convs of growth rate 8
    assert table["num_params"].nunique() == 1
    assert table["num_params"].iloc[0] == sum(v.numel() for k, v in run.weights[("avg", 0)].items()
                                              if "running" not in k and "num_batches" not in k)
    curves = epochs_long(table)
    assert list(curves["epoch"]) == [1, 1, 1, 1]
    assert curves["test_acc"].between(0, 1).all()


def test_paired_training_is_reproducible(data_root):
    """The same (variant, seed) trained twice gives the same history on the CPU."""
    run = FashionMNISTRun("smoke", device="cpu", root=data_root)
    settings = {**TINY, "transition_pool": "max"}
    first, second = run(settings, 3), run(settings, 3)
    for a, b in zip(first["epochs"], second["epochs"]):
        assert (a["train_loss"], a["test_acc"]) == (b["train_loss"], b["test_acc"])


def synthetic_run(calls, fail_after=None):
    """A run_one without training: the metric is a function of the settings and the seed."""
    def run_one(settings, seed):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt  # what Ctrl-C does mid-comparison
        calls.append((settings["width"], seed))
        score = settings["width"] / 10 + seed / 100
        return {"score": score, "epochs": [{"epoch": 1, "score": score / 2}, {"epoch": 2, "score": score}]}
    return run_one


def test_resuming_skips_finished_runs_and_loses_none(tmp_path):
    variants = grid(width=[1, 2])
    calls = []
    with pytest.raises(KeyboardInterrupt):
        compare(variants, seeds=(0, 1, 2), run_one=synthetic_run(calls, fail_after=3), out=tmp_path,
                verbose=False)
    saved = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(saved["variant"], saved["seed"])) == [("width=1", 0), ("width=2", 0), ("width=1", 1)]

    calls = []
    table = compare(variants, seeds=(0, 1, 2), run_one=synthetic_run(calls), out=tmp_path, verbose=False)
    assert calls == [(2, 1), (1, 2), (2, 2)]  # only the three runs that had not finished
    assert sorted(zip(table["variant"], table["seed"])) == sorted(
        (name, seed) for name in variants for seed in (0, 1, 2))
    assert table["score"].tolist()[:3] == saved["score"].tolist()  # the finished runs are kept as they were
    assert len(pd.read_csv(tmp_path / "results.csv")) == 6

    calls = []
    compare(variants, seeds=(0, 1, 2), run_one=synthetic_run(calls), out=tmp_path, verbose=False)
    assert calls == []  # everything finished: nothing to do


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


@pytest.mark.parametrize("argv, message", [
    (["--vary", "colour=red,blue"], "unknown setting 'colour'"),
    (["--vary", "growth_rate=16,many"], "bad value for 'growth_rate': expected a positive integer, got 'many'"),
    (["--vary", "growth_rate=0,16"], "bad value for 'growth_rate': expected a positive integer, got '0'"),
    (["--vary", "transition_pool=avg,min"], "bad value for 'transition_pool': expected one of avg, max"),
    (["--vary", "convs_per_block=4-x"], "expected positive integers joined by '-'"),
    (["--vary", "transition_pool="], "no values for 'transition_pool'"),
    (["--vary", "transition_pool"], "expected KEY=V1,V2,..."),
    (["--vary", "growth_rate=8,8"], "a value is listed twice"),
    (["--vary", "growth_rate=8", "--vary", "growth_rate=16"], "'growth_rate' is varied twice"),
    ([], "nothing to compare"),
    (["--vary", "growth_rate=8,16", "--set", "growth_rate=4"], "'growth_rate' is also varied"),
    (["--vary", "growth_rate=8,16", "--set", "resize=4"], "resize=4 is too small for this network"),
])
def test_bad_vary_is_a_clear_error_before_any_training(argv, message, capsys, monkeypatch, tmp_path):
    def no_training(self, settings, seed):
        raise AssertionError("trained despite a bad --vary")

    monkeypatch.setattr(FashionMNISTRun, "__call__", no_training)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", *argv, "--profile", "smoke", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


def test_compare_rejects_bad_variants_and_seeds():
    run_one = synthetic_run([])
    with pytest.raises(ValueError, match="non-empty dict"):
        compare({}, run_one=run_one)
    with pytest.raises(ValueError, match="seeds must be distinct integers"):
        compare(grid(width=[1]), seeds=(0, 0), run_one=run_one)
    with pytest.raises(ValueError, match="unknown setting"):
        FashionMNISTRun("smoke").check({"colour": "red"})


def test_cli_writes_results_summary_and_curves(data_root, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--vary", "transition_pool=avg,max", "--seeds", "2", "--profile", "smoke", "--device", "cpu",
            "--data", str(data_root), "--out", str(out)]
    for key, value in TINY.items():
        argv += ["--set", f"{key}={format_value(value)}"]
    main(argv)
    printed = capsys.readouterr().out
    assert "transition_pool=max - transition_pool=avg" in printed and "95% CI" in printed
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 and set(results["profile"]) == {"smoke"} and set(results["device"]) == {"cpu"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["kind"]) == ["variant", "variant", "difference"]
    assert (out / "curves.png").stat().st_size > 0
