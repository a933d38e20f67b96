"""The training loop: reproducibility, checkpoint and resume, History, options, and that it learns."""

import json
import sys
from pathlib import Path

import pytest
import torch

import minidense
from conftest import ROOT, tiny_densenet
from minidense import history as history_module
from minidense.options import Levers

EXACT = dict(levers=Levers(channels_last=False, bf16=False), verbose=False)  # the reference arithmetic: fp32, NCHW


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("examples_per_sec", "seconds")} for r in history.records]


def test_same_seed_gives_the_same_history_twice(tiny_data):
    runs = []
    for _ in range(2):
        train_iter, test_iter = tiny_data
        train_iter.set_epoch(0)
        runs.append(minidense.train(tiny_densenet(), train_iter, test_iter, 2, 0.1, "cpu", **EXACT))
    assert without_timing(runs[0]) == without_timing(runs[1])


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


def test_training_continues_from_the_weights_it_is_given(tiny_data):
    net = tiny_densenet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    minidense.train(net, *tiny_data, 1, 0.1, "cpu", **EXACT)
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # a second call starts from `after`, not from a fresh initialisation
    history = minidense.train(net, *tiny_data, 1, 0.1, "cpu", **EXACT)
    assert history.records[0]["train_loss"] < 2.0


@pytest.mark.parametrize("kwargs, message", [
    ({"num_epochs": 0}, "num_epochs must be a positive integer, got 0"),
    ({"lr": -0.1}, "lr must be in (0, inf), got -0.1"),
    ({"recipe": "fast"}, "unknown recipe 'fast'; choose one of d2l, short, book"),
    ({"resume": True}, "resume=True needs checkpoint=PATH"),
])
def test_bad_options_are_clear_errors(tiny_data, kwargs, message):
    args = {"num_epochs": 1, "lr": 0.1, **kwargs}
    with pytest.raises(ValueError) as error:
        minidense.train(tiny_densenet(), *tiny_data, device="cpu", **args, **EXACT)
    assert message in str(error.value)


def test_precise_bn_makes_running_statistics_the_plain_average():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    batches = [(torch.randn(8, 3, 4, 4) * 2 + 1, None) for _ in range(4)]
    minidense.training.recompute_bn_statistics(net, batches, num_batches=3)
    mean = torch.stack([X.mean(dim=(0, 2, 3)) for X, _ in batches[:3]]).mean(0)
    torch.testing.assert_close(net[0].running_mean, mean)
    assert not net.training


@pytest.mark.slow  # the book's network at 96x96: ~6 s on 2 cores
def test_a_smoke_run_on_the_real_data_learns(data_root):
    p = minidense.profile("smoke")
    torch.manual_seed(0)
    train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, p.resize, data_root, "cpu",
                                                         p.num_train, p.num_test)
    history = minidense.train(minidense.densenet(), train_iter, test_iter, p.num_epochs, device="cpu",
                              recipe=p.recipe, verbose=False)
    assert history.last["test_acc"] > 0.3  # chance is 0.1; measured 0.445 on 2 cores
