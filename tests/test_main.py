"""``python -m minidense train``: flags, precedence, output, resume, and bad values."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import minidense
from minidense.__main__ import main
from minidense.experiments import FashionMNISTRun
from minidense.options import format_value

# a network and a budget that train in seconds
TINY = dict(growth_rate=8, convs_per_block=(2, 2), resize=32, num_train=256, num_test=256, batch_size=64,
            num_epochs=1, precise_bn=2)


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--num-epochs/--epochs: expected a positive integer, got '0'"),
    (["train", "--num-epochs", "two"], "--num-epochs/--epochs: expected a positive integer, got 'two'"),
    (["train", "--num-train", "60001"], "num_train=60,001 is more than the 60,000 images of the split"),
    (["train", "--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["train", "--lr", "0"], "lr must be in (0, inf), got 0.0"),
    (["train", "--recipe", "fast"], "--recipe: expected one of d2l, short, book, got 'fast'"),
    (["train", "--translate", "9"], "translate must be at most 8 pixels"),
    (["train", "--label-smoothing", "1"], "label_smoothing must be in [0, 1)"),
    (["train", "--ema-decay", "1.5"], "ema_decay must be in (0, 1)"),
    (["train", "--nesterov", "--momentum", "0"], "nesterov=True needs momentum > 0"),
    (["train", "--out", "x.pt", "--checkpoint", "x.pt"], "--out and --checkpoint are the same file"),
    (["train", "--batch-size", "-4"], "--batch-size: expected a positive integer, got '-4'"),
    (["train", "--pool", "min"], "--transition-pool/--pool: expected one of avg, max, got 'min'"),
    (["train", "--convs-per-block", "4-x"], "--convs-per-block: expected positive integers joined by '-'"),
    (["train", "--profile", "huge"], "--profile: invalid choice: 'huge'"),
    (["train", "--resume"], "--resume needs --checkpoint FILE"),
    (["fit"], "invalid choice: 'fit'"),
])
def test_bad_values_exit_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_profile_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("MINIDENSE_PROFILE", "huge")
    with pytest.raises(SystemExit):
        main(["train"])
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "h.json")])
    assert "MINIDENSE_DATA" in capsys.readouterr().err


@pytest.mark.slow  # trains the smoke profile twice in subprocesses: ~20 s on 2 cores
def test_train_writes_the_history_and_flags_beat_the_profile(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDENSE_PROFILE", "cpu")  # the flag --profile smoke wins over this
    out, checkpoint = tmp_path / "run.json", tmp_path / "ckpt.pt"
    cmd = [sys.executable, "-m", "minidense", "train", "--profile", "smoke", "--lr", "0.04", "--pool", "max",
           "--data", str(data_root), "--device", "cpu", "--out", str(out), "--checkpoint", str(checkpoint)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = json.loads(out.read_text())
    assert len(run["records"]) == 1
    prov = run["provenance"]
    assert (prov["profile"], prov["lr"], prov["transition_pool"], prov["batch_size"], prov["num_train"]) == \
        ("smoke", 0.04, "max", 64, 512)
    assert (prov["growth_rate"], prov["convs_per_block"], prov["recipe"], prov["seed"]) == \
        (32, [4, 4, 4, 4], "short", 0)
    assert "train --profile smoke" in prov["command"]
    # --resume with a finished checkpoint trains nothing more and writes the same records
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout
    assert json.loads(out.read_text())["records"] == run["records"]


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


def test_cli_has_a_flag_for_every_lever(capsys):
    from minidense.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for lever in ("channels_last", "bf16", "compile", "inplace_relu", "host_sync", "keep_freed_memory"):
        flag = lever.replace("_", "-")
        assert f"--{flag}, --no-{flag}" in help_text, lever
    assert "--eval-batch-size" in help_text
