"""minidense.runs: one record per finished run, written atomically; results.csv rebuilt under a lock
from the records, in an order they alone decide; two writers and kill -9 lose nothing."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from conftest import ROOT
from minidense.experiments import compare
from minidense.grids import grid
from minidense.runs import RunRecords

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
