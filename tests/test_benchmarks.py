"""The benchmarks run: benchmarks/train_speed.py --smoke, side by side with d2l's pipeline."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from minidense import allocator


@pytest.mark.slow
def test_benchmark_smoke_runs(data_root, tmp_path):
    pytest.importorskip("d2l")
    out = tmp_path / "speed.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--smoke", "--data", str(data_root),
                    "--out", str(out)], check=True, env=env, cwd=tmp_path, timeout=600)

    result = json.loads(out.read_text())
    assert result["end_to_end"]["ratio"] > 0 and result["step"]["ratio"] > 0
    configurations = {row["configuration"] for row in result["ablation"]}
    assert configurations >= {"d2l train_ch6 step", "minidense, all levers (probed defaults)"}
    assert ("- keep freed memory" in configurations) == allocator.can_keep_freed_memory()
    assert all(row["first_step_seconds"] > 0 and row["images_per_sec"] > 0 for row in result["ablation"])
    assert result["hardware"]["flops_per_image"] > 0
    assert result["provenance"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
