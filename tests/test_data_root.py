"""The suite's ``data_root`` fixture: found as the library finds the data; missing data skips, but fails under CI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minidense import data

ROOT = Path(__file__).resolve().parent.parent


def test_the_fixture_uses_the_librarys_root(data_root, request):
    given = request.config.getoption("--minidense-data")
    assert data_root == data.data_root(given)  # --minidense-data, else MINIDENSE_DATA, else ~/.cache/minidense
    images, _ = data.read_fashion_mnist("test", data_root)
    assert images.shape == (10_000, 28, 28)


def run_a_data_test(root, ci):
    """One data test of the suite, run with ``--minidense-data root`` (a folder without usable data)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MINIDENSE_DATA")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rs",
                           "--minidense-data", str(root), "tests/test_data.py::test_full_splits_have_all_images"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two pytest processes: ~10 s on 2 cores
def test_unusable_data_skips_locally_and_fails_under_ci(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\0" * 16)  # present (so nothing is downloaded), but not the data
    local = run_a_data_test(tmp_path, ci=False)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    assert f"no usable Fashion-MNIST under {tmp_path}" in local.stdout
    ci = run_a_data_test(tmp_path, ci=True)
    assert ci.returncode == 1 and "CI=true: a missing data set fails the run" in ci.stdout, ci.stdout + ci.stderr


def test_the_default_root_is_the_cache_folder_in_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIDENSE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.data_root() == tmp_path / ".cache" / "minidense"
    monkeypatch.setenv("MINIDENSE_DATA", str(tmp_path / "elsewhere"))
    assert data.data_root() == tmp_path / "elsewhere"
    assert data.data_root(tmp_path / "given") == tmp_path / "given"  # the argument wins
    assert data.data_root("~/x") == tmp_path / "x"  # ~ is expanded


def test_missing_files_are_downloaded_through_torchvision_into_the_root(data_root, tmp_path, monkeypatch):
    import shutil

    import torchvision

    calls = []

    def fake_download(root, train, download):
        calls.append((root, train, download))
        raw = data_root / "FashionMNIST" / "raw"
        (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        prefix = "train" if train else "t10k"
        for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
            shutil.copy(raw / name, tmp_path / "FashionMNIST" / "raw" / name)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_download)
    images, labels = data.read_fashion_mnist("test", tmp_path)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]  # both splits, download=True
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    data.read_fashion_mnist("train", tmp_path)
    assert len(calls) == 2  # the files are there now: nothing more is fetched
