"""``python -m minidense train``: flags, precedence, output, resume, and bad values."""

import json
import subprocess
import sys

import pytest

from minidense.__main__ import main


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
