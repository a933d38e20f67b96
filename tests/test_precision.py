"""The precision probe, on stand-in GPUs; autocast and the fp16 gradient scaler, on the CPU."""

import pytest
import torch
from torch import nn

from minidense import hardware
from minidense.hardware import bf16_pays, default_precision
from minidense.precision import autocast, backward_and_step, cuda_precision, grad_scaler


@pytest.mark.parametrize("gpu, capability, expected", [
    ("P100", (6, 0), "fp32"),  # no tensor cores
    ("GTX 1080", (6, 1), "fp32"),
    ("V100", (7, 0), "fp16"),  # the first fp16 tensor cores
    ("T4, Colab's free GPU", (7, 5), "fp16"),  # fp16 tensor cores, bf16 only emulated
    ("A100", (8, 0), "bf16"),  # native bf16
    ("RTX 3090", (8, 6), "bf16"),
    ("H100", (9, 0), "bf16"),
    ("B200", (10, 0), "bf16"),
])
def test_each_gpu_gets_the_precision_its_hardware_computes_natively(gpu, capability, expected):
    assert cuda_precision(capability) == expected, gpu


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((6, 0), "fp32")])
def test_the_default_on_cuda_reads_the_gpus_compute_capability(monkeypatch, capability, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    # On a T4 torch.cuda.is_bf16_supported() says True (it counts emulation): it must not be what decides.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert default_precision("cuda:0") == expected
    assert asked == [torch.device("cuda:0")]
    assert bf16_pays("cuda:0") == (expected == "bf16")  # the T4's emulated bf16 does not pay


@pytest.mark.parametrize("bf16_pays, expected", [(True, "bf16"), (False, "fp32")])
def test_the_default_on_a_cpu_is_bf16_where_it_pays_else_fp32(monkeypatch, bf16_pays, expected):
    monkeypatch.setattr(hardware, "bf16_pays", lambda device: bf16_pays)
    assert default_precision("cpu") == expected


def test_other_devices_default_to_fp32():
    assert default_precision("meta") == "fp32"


@pytest.mark.parametrize("bad", ["fp64", "BF16", "float16", None, True])
def test_an_unknown_precision_is_refused_naming_the_choices(bad):
    with pytest.raises(ValueError, match="one of fp32, bf16, fp16"):
        autocast("cpu", bad)
    with pytest.raises(ValueError, match="one of fp32, bf16, fp16"):
        grad_scaler("cpu", bad)


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_the_matrix_products_in_the_precision(name, dtype):
    a = torch.ones(4, 4)
    with autocast("cpu", name):
        assert (a @ a).dtype == dtype


def test_only_fp16_gets_a_gradient_scaler():
    assert grad_scaler("cpu", "fp32") is None
    assert grad_scaler("cpu", "bf16") is None
    scaler = grad_scaler("cpu", "fp16")
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()


def _net_and_batch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return net, torch.randn(8, 1, 8, 8), torch.arange(8) % 3


def _fp16_loss(net, X, y):
    with autocast("cpu", "fp16"):
        return nn.functional.cross_entropy(net(X), y)


def test_without_a_scaler_a_step_is_backward_then_step():
    net, X, y = _net_and_batch()
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    assert backward_and_step(nn.functional.cross_entropy(net(X), y), optimizer) is False
    assert not torch.equal(before[-2], net[-1].weight)  # the classifier's weights moved


def test_the_scaler_skips_a_step_whose_gradients_overflow_and_halves_its_scale():
    net, X, y = _net_and_batch()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = grad_scaler("cpu", "fp16")
    assert backward_and_step(_fp16_loss(net, X, y), optimizer, scaler) is False  # a good step
    scale = scaler.get_scale()
    assert scale == 2.0 ** 16  # torch's initial scale, not yet grown (that takes 2,000 good steps)
    weights = [p.detach().clone() for p in net.parameters()]
    loss = _fp16_loss(net, X, y) * torch.tensor(float("inf"))  # an overflow, injected
    assert backward_and_step(loss, optimizer, scaler) is True
    assert scaler.get_scale() == scale / 2
    assert all(torch.equal(w, p) for w, p in zip(weights, net.parameters()))  # the step was skipped
    assert backward_and_step(_fp16_loss(net, X, y), optimizer, scaler) is False  # and training goes on
    assert not torch.equal(weights[-2], net[-1].weight)


def test_a_scaled_fp16_step_moves_the_weights_as_an_fp32_step_does():
    net, X, y = _net_and_batch()
    reference, _, _ = _net_and_batch()
    scaled = grad_scaler("cpu", "fp16")
    backward_and_step(_fp16_loss(net, X, y), torch.optim.SGD(net.parameters(), lr=0.1), scaled)
    backward_and_step(nn.functional.cross_entropy(reference(X), y), torch.optim.SGD(reference.parameters(), lr=0.1))
    for p, q in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, atol=2e-3, rtol=0)  # fp16's 11-bit mantissa, unscaled back to fp32


# ---- the precision lever: its old spelling, old records and their keys ----------------------------------------

def test_the_lever_takes_one_of_three_precisions_or_none():
    from minidense import Levers

    assert [Levers(precision=p).precision for p in (None, "fp32", "bf16", "fp16")] == [None, "fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16 \(or None: decided for the "
                                         r"device\), got 'fp64'"):
        Levers(precision="fp64")


def test_the_old_bf16_switch_still_spells_bf16_and_fp32():
    from minidense import Levers

    assert Levers(bf16=True) == Levers(precision="bf16") and Levers(bf16=False) == Levers(precision="fp32")
    assert Levers(precision="fp32").replace(bf16=True).precision == "bf16"
    assert [Levers(precision=p).bf16 for p in (None, "fp32", "bf16", "fp16")] == [None, False, True, False]
    with pytest.raises(ValueError, match="bf16=True contradicts precision='fp16'"):
        Levers(bf16=True, precision="fp16")
    with pytest.raises(ValueError, match="bf16 must be True or False, got 'yes'"):
        Levers(bf16="yes")


def test_a_run_recorded_with_the_bf16_switch_gives_back_its_precision():
    from minidense import History

    assert History(provenance={"bf16": True, "channels_last": True}).levers.precision == "bf16"
    assert History(provenance={"bf16": False}).levers.precision == "fp32"
    assert History(provenance={"precision": "fp16"}).levers.precision == "fp16"


def test_fp32_and_bf16_runs_keep_the_keys_they_had_under_the_bf16_switch():
    import hashlib
    import json

    from minidense.experiments import FashionMNISTRun
    from minidense.options import fields_of, format_value
    from minidense.settings import GROUPS

    # fields added after these runs were recorded enter a key only away from the value they implied
    implied = {name: field.metadata["implied"] for group in GROUPS.values()
               for name, field in fields_of(group).items() if "implied" in field.metadata}
    run = FashionMNISTRun("smoke", device="cpu")
    for precision, bf16 in (("fp32", False), ("bf16", True)):
        full = {k: v for k, v in run.resolve({"precision": precision}).flat().items()
                if k != "precision" and (k not in implied or v != implied[k])}
        as_recorded = json.dumps({"seed": 0, **{k: format_value(v) for k, v in {**full, "bf16": bf16}.items()}},
                                 sort_keys=True)
        assert run.key({"precision": precision}, 0) == hashlib.sha256(as_recorded.encode()).hexdigest()[:16]
        assert run.key({"bf16": bf16}, 0) == run.key({"precision": precision}, 0)  # compare's old key
    keys = {run.key({"precision": p}, 0) for p in ("fp32", "bf16", "fp16")}
    assert len(keys) == 3


def test_every_recorded_comparison_keeps_its_key():
    import json

    from conftest import ROOT
    from minidense.experiments import SETTINGS, FashionMNISTRun

    runners, checked = {}, 0
    for path in sorted((ROOT / "book" / "results").glob("*/runs/*.json")):
        record = json.loads(path.read_text())
        settings = {k: None if v == "none" else SETTINGS[k](v) for k, v in json.loads(record["settings"]).items()}
        run = runners.setdefault(record["profile"], FashionMNISTRun(record["profile"], device="cpu"))
        assert run.key(settings, record["seed"]) == record["key"], path.name
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("argv, message", [
    (["train", "--precision", "fp64"], "--precision: expected one of fp32, bf16, fp16, got 'fp64'"),
    (["train", "--bf16", "--precision", "fp16"], "bf16=True contradicts precision='fp16'"),
    (["train", "--device", "tpu"], "device 'tpu': a TPU needs torch_xla"),
])
def test_the_command_line_refuses_a_bad_precision_or_device(argv, message, capsys):
    from minidense.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# ---- fp16 training on the CPU: the scaler in the loop, in the checkpoint and in the History -------------------

class _OverflowOnce(torch.autograd.Function):
    """The identity forward; backward, the gradient times inf: an fp16 overflow, injected."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class OverflowAtStep(nn.Module):
    """Passes its input through; the backward pass of training step ``step`` (from 1) overflows."""

    def __init__(self, step):
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, x):
        if not self.training or not torch.is_grad_enabled():
            return x
        self.calls += 1
        return _OverflowOnce.apply(x) if self.calls == self.step else x


def _fp16_run(data, epochs, checkpoint=None, resume=False, overflow_at=3):
    import minidense
    from conftest import tiny_densenet

    net = nn.Sequential(tiny_densenet(), OverflowAtStep(overflow_at))
    history = minidense.train(net, *data, epochs, 0.1, "cpu", levers=minidense.Levers(precision="fp16",
                              channels_last=False), checkpoint=checkpoint, resume=resume, progress=False,
                              verbose=False)
    return net, history


@pytest.mark.slow
def test_an_fp16_run_counts_the_steps_its_scaler_skipped(tiny_data, tmp_path):
    _, history = _fp16_run(tiny_data, 1, tmp_path / "run.pt")
    assert history.provenance["precision"] == "fp16"
    assert history.last["skipped_steps"] == 1  # the injected overflow, and no other
    state = torch.load(tmp_path / "run.pt", weights_only=False)
    assert state["scaler"]["scale"] == 2.0 ** 15  # halved once from torch's 2 ** 16


@pytest.mark.slow
def test_a_resumed_fp16_run_ends_as_an_uninterrupted_one_scaler_included(tiny_data, tmp_path):
    straight, straight_history = _fp16_run(tiny_data, 2, tmp_path / "straight.pt")
    _fp16_run(tiny_data, 1, tmp_path / "resumed.pt")
    resumed, resumed_history = _fp16_run(tiny_data, 2, tmp_path / "resumed.pt", resume=True, overflow_at=0)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    untimed = lambda history: [{k: v for k, v in r.items() if k not in ("examples_per_sec", "seconds")}
                               for r in history.records]
    assert untimed(resumed_history) == untimed(straight_history)  # skipped steps included
    saved = [torch.load(tmp_path / f, weights_only=False)["scaler"] for f in ("straight.pt", "resumed.pt")]
    assert saved[0] == saved[1]  # the scale and its count of good steps went on where they stopped


def test_an_old_checkpoint_without_a_scaler_still_resumes(tmp_path):
    from minidense.checkpoints import Checkpoint

    assert "scaler" in Checkpoint.FORMAT and "scaler" not in Checkpoint.NEEDED
