"""minidense.history: a run's per-epoch records and provenance, saved and read back; the d2l line; the
command as typed."""

import json
import sys
from pathlib import Path

import torch

import minidense
from conftest import ROOT, tiny_densenet
from minidense import history as history_module
from minidense.options import Levers

EXACT = dict(levers=Levers(channels_last=False, bf16=False), verbose=False)  # fp32, NCHW


def test_history_records_every_epoch_with_provenance(tiny_data):
    history = minidense.train(tiny_densenet(), *tiny_data, 2, 0.1, "cpu", profile="smoke", **EXACT)
    assert [r["epoch"] for r in history.records] == [1, 2]
    assert set(history.records[0]) == {"epoch", "train_loss", "train_acc", "test_acc", "examples_per_sec", "seconds"}
    prov = history.provenance
    assert prov["profile"] == "smoke" and prov["device"] == "cpu" and prov["torch"] == torch.__version__
    assert {"device_name", "command", "git_commit", "date", "lr", "num_epochs"} <= set(prov)
    assert list(history.to_frame()["epoch"]) == [1, 2]


def test_record_names_paths_inside_the_checkout_relative_to_its_root(monkeypatch, tmp_path):
    root = tmp_path / "checkout"
    monkeypatch.setattr(history_module, "repository_root", lambda: root)
    monkeypatch.setattr(sys, "argv", ["/x/src/minidense/__main__.py", "compare", "--out", f"{root}/book/results/a",
                                      f"--data={root}/data", "--checkpoints", "/elsewhere/ckpt", "runs/rel",
                                      f"{root}2/beside"])
    assert history_module.command_line() == ("python -m minidense compare --out book/results/a --data=data "
                                             f"--checkpoints /elsewhere/ckpt runs/rel {root}2/beside")
    monkeypatch.setattr(history_module, "repository_root", lambda: None)  # not a git checkout: as typed
    assert history_module.command_line() == " ".join(["python -m minidense", *sys.argv[1:]])


def test_a_path_through_a_link_into_the_checkout_is_named_relative_to_it(monkeypatch, tmp_path):
    root = tmp_path.resolve() / "checkout"  # as git names it: links resolved
    (root / "book").mkdir(parents=True)
    (tmp_path / "link").symlink_to(root / "book")
    monkeypatch.setattr(history_module, "repository_root", lambda: root)
    monkeypatch.setattr(sys, "argv", ["/x/src/minidense/__main__.py", "train", "--out", f"{tmp_path}/link/a.json"])
    assert history_module.command_line() == "python -m minidense train --out book/a.json"


def test_the_repository_root_is_the_checkout_the_library_runs_from():
    library = Path(minidense.__file__).resolve()
    expected = ROOT if library.is_relative_to(ROOT) and (ROOT / ".git").exists() else None
    assert history_module.repository_root() == expected


def test_history_round_trips_through_json(tiny_data, tmp_path):
    history = minidense.train(tiny_densenet(), *tiny_data, 1, 0.1, "cpu", **EXACT)
    path = history.save(tmp_path / "runs" / "h.json")
    assert json.loads(path.read_text())["records"] == history.records
    assert minidense.History.load(path) == history


def test_summary_is_the_d2l_line():
    history = minidense.History(provenance={"device": "cuda:0"})
    history.append(epoch=1, train_loss=0.1544, train_acc=0.9431, test_acc=0.88, examples_per_sec=5506.9, seconds=10.0)
    assert history.summary() == "loss 0.154, train acc 0.943, test acc 0.880, 5506.9 examples/sec on cuda:0"


def test_a_history_gives_back_the_levers_it_ran_with():
    history = minidense.History(provenance={"bf16": True, "channels_last": False, "eval_batch_size": 64,
                                            "keep_freed_memory": True, "lr": 0.1})
    assert history.levers == Levers(bf16=True, channels_last=False, eval_batch_size=64, keep_freed_memory=True)
