"""Faults: two writers, kill -9, unwritable paths, changed settings on resume, bad input found before
any training. Each test injects the fault and finishes in bounded time."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from torch import nn

import minidense
from conftest import ROOT, tiny_densenet
from minidense.__main__ import main
from minidense.experiments import FashionMNISTRun, compare
from minidense.files import atomic_write
from minidense.grids import grid
from minidense.options import Levers, Recipe
from minidense.runs import RunRecords

EXACT = dict(levers=Levers(bf16=False, channels_last=False), verbose=False, progress=False)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}

# A comparison whose runs take a moment and train nothing; argv: out folder, widths, [seed that kills]
SYNTHETIC_COMPARE = textwrap.dedent("""
    import os, signal, sys, time
    from minidense import compare, grid
    out, widths = sys.argv[1], [int(w) for w in sys.argv[2].split(",")]
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
    def run_one(settings, seed):
        if seed == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return {"score": settings["width"] + seed / 10, "epochs": []}
    compare(grid(width=widths), seeds=range(3), run_one=run_one, out=out, verbose=False)
""")


def synthetic_compare(out, widths, kill_at=None):
    args = [sys.executable, "-c", SYNTHETIC_COMPARE, str(out), widths] + ([str(kill_at)] if kill_at is not None else [])
    return subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # two compare processes, each importing torch and training
def test_two_compares_on_one_folder_keep_every_row(tmp_path):
    first, second = synthetic_compare(tmp_path, "1,2"), synthetic_compare(tmp_path, "3,4")
    for process in (first, second):
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 12 and len(set(results["key"])) == 12
    assert sorted(set(results["variant"])) == ["width=1", "width=2", "width=3", "width=4"]


@pytest.mark.slow  # two compare processes, each importing torch and training
def test_two_compares_of_the_same_grid_both_finish_and_keep_one_row_per_run(tmp_path):
    first, second = synthetic_compare(tmp_path, "1,2"), synthetic_compare(tmp_path, "1,2")
    for process in (first, second):
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert len(pd.read_csv(tmp_path / "results.csv")) == 6
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow  # a compare process killed and started again
def test_kill_9_mid_comparison_loses_no_finished_run(tmp_path):
    killed = synthetic_compare(tmp_path, "1,2", kill_at=1)  # dies on its first run of seed 1
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    saved = pd.read_csv(tmp_path / "results.csv")
    assert sorted(zip(saved["variant"], saved["seed"])) == [("width=1", 0), ("width=2", 0)]
    resumed = synthetic_compare(tmp_path, "1,2")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert len(pd.read_csv(tmp_path / "results.csv")) == 6


def test_a_rerun_with_other_settings_trains_instead_of_reusing_old_runs(tmp_path):
    calls = []

    def run_one(settings, seed):
        calls.append((settings.get("resize"), seed))
        return {"score": float(seed), "epochs": []}

    compare(grid(width=[1]), seeds=(0, 1), run_one=run_one, out=tmp_path, verbose=False)
    table = compare({"width=1": {"width": 1, "resize": 48}}, seeds=(0, 1), run_one=run_one, out=tmp_path,
                    verbose=False)
    assert calls == [(None, 0), (None, 1), (48, 0), (48, 1)]
    assert set(table["resize"]) == {48}  # this call's rows are this call's runs
    assert len(pd.read_csv(tmp_path / "results.csv")) == 4


def test_a_runs_key_holds_every_setting_that_changes_its_result():
    smoke, cpu = FashionMNISTRun("smoke"), FashionMNISTRun("cpu")
    base = smoke.key({}, 0)
    assert base == smoke.key({}, 0)
    others = [smoke.key({}, 1), cpu.key({}, 0), smoke.key({"resize": 48}, 0), smoke.key({"recipe": "book"}, 0),
              smoke.key({"lr": 0.01}, 0), smoke.key({"bf16": not smoke.levers.bf16}, 0)]
    assert len({base, *others}) == len(others) + 1


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")

    def half_then_full_disk(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_then_full_disk)
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("argv, message", [
    (["--out", "{d}/a-file/h.json"], "cannot write"),
    (["--checkpoint", "{d}/a-file/c.pt"], "cannot write"),
    (["--out", "{d}/same.pt", "--checkpoint", "{d}/same.pt"], "--out and --checkpoint are the same file"),
])
def test_train_cli_checks_its_outputs_before_reading_any_data(argv, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr("minidense.__main__.load_fashion_mnist", lambda *a, **k: pytest.fail("data was read"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--profile", "smoke", *[a.format(d=tmp_path) for a in argv]])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_train_cli_header_prints_the_settings_in_use(data_root, tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_train(net, train_iter, test_iter, num_epochs, **kwargs):
        seen.update(kwargs, num_epochs=num_epochs)
        history = minidense.History(provenance={})
        history.append(epoch=1, train_loss=1.0, train_acc=0.5, test_acc=0.5, examples_per_sec=1.0, seconds=1.0)
        return history

    monkeypatch.setattr("minidense.__main__.train", fake_train)
    main(["train", "--profile", "smoke", "--lr", "0.04", "--epochs", "3", "--no-nesterov", "--data", str(data_root),
          "--out", str(tmp_path / "h.json")])
    printed = capsys.readouterr().out
    assert "3 epochs" in printed and "onecycle lr 0.04" in printed and "Nesterov" not in printed
    assert seen["recipe"].lr == 0.04 and seen["recipe"].nesterov is False and seen["num_epochs"] == 3


def test_a_nan_loss_stops_training_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    with torch.no_grad():
        net[1].weight.fill_(float("nan"))
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(FloatingPointError, match="the training loss became nan in epoch 1"):
        minidense.train(net, *tiny_data, 2, 0.1, checkpoint=checkpoint, **EXACT)
    assert not checkpoint.exists()


@pytest.mark.parametrize("train_iter, message", [
    ((batch for batch in []), "train_iter must have a length"),
    ([], "train_iter has no batches"),
])
def test_iterables_without_length_or_batches_are_clear_errors(train_iter, message):
    with pytest.raises(ValueError, match=message):
        minidense.train(tiny_densenet(), train_iter, [], 1, 0.1, "cpu", **EXACT)


def test_evaluating_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="no batches"):
        minidense.evaluate_accuracy(tiny_densenet(), [], "cpu")


def test_augmentation_needs_the_librarys_iterator():
    batches = [(torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="must be a minidense.data.FashionMNISTBatches"):
        minidense.train(tiny_densenet(), batches, batches, 1, recipe=Recipe(translate=2), device="cpu", **EXACT)


@pytest.mark.parametrize("X, message", [
    (torch.zeros(2, 1, 32, 32, dtype=torch.float64), "expects torch.float32 input, the dtype of its weights"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "expects floating-point images"),
])
def test_input_of_another_dtype_is_an_error_in_the_librarys_terms(X, message):
    with pytest.raises(ValueError, match=message):
        tiny_densenet()(X)


def test_a_very_deep_network_builds_at_once():
    net = minidense.densenet(growth_rate=1, convs_per_block=(1,) * 18)  # 17 transitions: 2**19 pixels
    assert net.min_size == 524_285  # 4 * 2**17 for the stem and the transitions, less the padding's slack


@pytest.mark.parametrize("argv, message", [
    (["--vary", "recipe=book,d2l", "--metric", "bogus"], "--metric 'bogus': choose one of"),
    (["--vary", "recipe=book,d2l", "--baseline", "d2l"], "--baseline 'd2l' is not one of the variants"),
    (["--vary", "recipe=book,fast"], "bad value for 'recipe': expected one of d2l, short, book"),
    (["--vary", "growth_rate=8,16", "--set", "num_train=70000"], "num_train=70,000 is more than the 60,000"),
    (["--vary", "growth_rate=8,16", "--set", "nesterov=true", "--set", "momentum=0"],
     "nesterov=True needs momentum > 0"),
    (["--vary", "growth_rate=8,16", "--set", "resizee=48"], "--set 'resizee=48': unknown setting 'resizee'"),
    (["--vary", "translate=2,9"], "translate must be at most 8 pixels"),
    (["--vary", "label_smoothing=0,1"], "label_smoothing must be in [0, 1)"),
    (["--vary", "ema_decay=0.99,1"], "ema_decay must be in (0, 1)"),
    (["--vary", "ema_decay=0.99,none", "--set", "precise_bn=0"], "ema_decay needs precise_bn > 0"),
])
def test_bad_compare_settings_are_reported_before_any_training(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(FashionMNISTRun, "__call__", lambda self, settings, seed: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        main(["compare", *argv, "--profile", "smoke", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_records_of_a_comparison_are_json_with_their_key(tmp_path):
    compare(grid(width=[1, 2]), seeds=(0,), run_one=lambda s, seed: {"score": 1.0, "epochs": []}, out=tmp_path,
            verbose=False)
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert sorted(r["variant"] for r in records) == ["width=1", "width=2"]
    assert all(p.stem == json.loads(p.read_text())["key"] for p in (tmp_path / "runs").glob("*.json"))


def test_results_csv_is_rebuilt_in_the_same_order_whatever_the_records_file_times(tmp_path):
    compare(grid(width=[2, 1]), seeds=(1, 0), run_one=lambda s, seed: {"score": 1.0, "epochs": []}, out=tmp_path,
            verbose=False)
    first = (tmp_path / "results.csv").read_text()
    for age, path in enumerate(sorted((tmp_path / "runs").glob("*.json"), reverse=True)):
        os.utime(path, ns=(age, age))  # as a clone leaves them: times unrelated to when each run finished
    (tmp_path / "runs" / "notes.json").write_text('{"not": "a record"}')  # JSON, but not one of ours
    RunRecords(tmp_path).rebuild_results()
    assert (tmp_path / "results.csv").read_text() == first
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(zip(table["seed"], table["variant"])) == [(0, "width=1"), (0, "width=2"), (1, "width=1"),
                                                          (1, "width=2")]
