"""The GPU check: without CUDA it says so and exits cleanly; its pieces, and a rehearsal on the CPU."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_gives_the_command():
    assert "python benchmarks/gpu_check.py" in (ROOT / "README.md").read_text()


def test_without_cuda_it_says_so_exits_0_and_writes_nothing(tmp_path):
    out = tmp_path / "record.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "No CUDA GPU here" in done.stdout and "Nothing was run or recorded" in done.stdout
    assert not out.exists()


def test_the_parts_fit_in_eight_minutes(gpu_check):
    assert sum(gpu_check.PARTS.values()) <= gpu_check.BUDGET <= 8 * 60 - 10


@pytest.mark.parametrize("argv, message", [
    (["--parts", "epochs,bogus"], "unknown part(s) bogus"),
    (["--rehearse"], "--rehearse needs --out FILE"),
])
def test_bad_arguments_are_refused(gpu_check, argv, message, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name, expected", [("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
                                            ("Tesla T4", "tesla-t4")])
def test_the_record_is_named_after_the_gpu(gpu_check, name, expected):
    assert gpu_check.slug(name) == expected


def test_failures_are_found_wherever_a_part_nests_them(gpu_check):
    parts = {"epochs": {"fp16": {"status": "failed"}, "fp32": {"status": "ok"}},
             "chapters": {"passed": 1, "chapters": {"training": {"status": "stopped at its budget"}}},
             "torchrun": {"status": "failed"}}
    assert gpu_check.failures(parts) == ["epochs/fp16", "torchrun"]


def test_a_command_past_its_budget_is_killed_with_the_processes_it_started(gpu_check):
    start = time.perf_counter()
    done = gpu_check.run_command(["sh", "-c", "sleep 30 & sleep 30; echo never"], timeout=1)
    assert done["timed_out"] and time.perf_counter() - start < 10 and "never" not in done["output"]
    assert gpu_check._status(done) == "stopped at its budget"


def test_a_budgeted_epoch_stops_once_its_seconds_have_passed(gpu_check):
    class Batches(list):
        batch_size = 2

    batches = Batches([(torch.zeros(2), torch.zeros(2))] * 5)
    budgeted = gpu_check.Budgeted(batches, until=0)
    assert len(budgeted) == 5 and budgeted.batch_size == 2  # what train() reads: the wrapped batches'
    assert len(list(budgeted)) == 1 and budgeted.yielded == 2
    assert len(list(gpu_check.Budgeted(batches, until=time.time() + 60))) == 5


@pytest.mark.slow
def test_a_rehearsal_on_the_cpu_runs_every_training_part(data_root, tmp_path):
    out = tmp_path / "record.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--rehearse", "--parts", "epochs,resume,torchrun,memory",
                           "--data", str(data_root), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parts = json.loads(out.read_text())["parts"]
    for name in ("fp32", "bf16", "fp16"):
        assert parts["epochs"][name]["status"] == "ok" and parts["epochs"][name]["precision"] == name
        assert 0 < parts["epochs"][name]["fraction_of_epoch"] <= 1
    assert parts["resume"]["epochs_resumed"] == 2 and parts["resume"]["checkpoint_scaler"]["scale"] > 0
    assert parts["memory"]["bytes"]["fp16"] < parts["memory"]["bytes"]["fp32"]
    assert parts["torchrun"]["status"] == "ok" and parts["torchrun"]["world_size"] == 1
