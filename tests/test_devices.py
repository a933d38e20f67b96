"""Devices named in the user's terms: what this machine lacks is refused, naming what it has."""

import pytest
import torch

from minidense import devices
from minidense.devices import available_devices, resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def one_gpu(monkeypatch):
    """A stand-in machine with one GPU, a T4."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(devices, "device_name", lambda d: "Tesla T4" if torch.device(d).type == "cuda" else "a CPU")


@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), ("CPU", "cpu"), (" cpu ", "cpu"),
                                            (torch.device("cpu"), "cpu")])
def test_the_cpu_is_always_there(name, expected):
    assert resolve_device(name) == torch.device(expected)


def test_none_means_cuda_when_available_else_the_cpu(no_cuda):
    assert resolve_device(None) == resolve_device() == torch.device("cpu")


def test_the_apple_gpu_is_accepted_only_where_there_is_one(no_cuda, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'mps': the Apple GPU \(mps\) is not available here"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    assert available_devices()[-1] == "mps (Apple GPU)"


def test_a_machine_without_cuda_lists_only_its_cpu(no_cuda):
    assert len(available_devices()) == 1 and available_devices()[0].startswith("cpu (")


@pytest.mark.parametrize("name, why", [
    ("gpu", "PyTorch calls an NVIDIA GPU 'cuda'"),
    ("GPU:0", "PyTorch calls an NVIDIA GPU 'cuda'"),
    ("tpu", "a TPU needs torch_xla"),
    ("cuda", "CUDA is not available here"),
    ("cuda:0", "CUDA is not available here"),
    ("cuda:3", "CUDA is not available here"),
    ("meta", "minidense trains on cpu, cuda or mps, not meta"),
    ("banana", "not a device name; write cpu, cuda or cuda:N"),
    ("cuda:x", "not a device name"),
])
def test_a_device_this_machine_lacks_is_refused_naming_the_cpu_it_has(no_cuda, name, why):
    with pytest.raises(ValueError) as error:
        resolve_device(name)
    message = str(error.value)
    assert message.startswith(f"device {name.strip()!r}: ") and why in message
    assert message.endswith(f"This machine has: {available_devices()[0]}")


def test_on_a_machine_with_one_gpu_cuda_3_is_refused_and_cuda_0_accepted(one_gpu):
    assert available_devices() == ["cpu (a CPU)", "cuda:0 (Tesla T4)"]
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"device 'cuda:3': there is no GPU 3: this machine has 1 GPU, "
                                         r"numbered from 0. This machine has: cpu \(a CPU\), cuda:0 \(Tesla T4\)"):
        resolve_device("cuda:3")
    with pytest.raises(ValueError, match="'cuda'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="there is no GPU 1: this machine has 1 GPU, numbered from 0"):
        resolve_device("cuda:1")  # the first index past the last GPU


def test_a_machine_with_two_gpus_says_so_in_the_plural(one_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="there is no GPU 2: this machine has 2 GPUs, numbered from 0"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("argv", [["train", "--device", "tpu"], ["train", "--device", "gpu"],
                                  ["compare", "--vary", "transition_pool=avg,max", "--device", "tpu"]])
def test_the_command_line_refuses_a_device_before_reading_any_data(no_cuda, argv, capsys, monkeypatch, tmp_path):
    from minidense import data
    from minidense.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "read_fashion_mnist", lambda *a, **k: pytest.fail("data read before the device check"))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"device {argv[argv.index('--device') + 1]!r}: " in err
    assert "This machine has: cpu (" in err


def test_compare_refuses_cuda_3_on_a_machine_with_one_gpu_before_training(one_gpu):
    import minidense

    with pytest.raises(ValueError, match="there is no GPU 3"):
        minidense.compare({"avg": {"transition_pool": "avg"}}, seeds=[0], profile="smoke", device="cuda:3")


def test_the_device_line_names_colabs_t4_and_its_fp16(one_gpu, monkeypatch):
    from minidense import hardware

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(hardware, "device_name", lambda device: "Tesla T4")
    assert hardware.device_report() == "device: cuda (Tesla T4), training in fp16"


def test_without_a_gpu_the_device_line_says_how_to_get_one_in_colab(no_cuda, monkeypatch):
    from minidense import hardware

    monkeypatch.setattr(hardware, "bf16_pays", lambda device: False)
    first, second = hardware.device_report().splitlines()
    assert first.startswith("device: cpu (") and first.endswith("), training in fp32")
    assert "Runtime > Change runtime type > T4 GPU" in second


@pytest.mark.parametrize("device, why", [("gpu", "PyTorch calls an NVIDIA GPU 'cuda'"),
                                         ("cuda", "CUDA is not available here")])
def test_train_refuses_a_device_this_machine_lacks_before_any_step(no_cuda, device, why):
    import minidense

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    before = [p.detach().clone() for p in net.parameters()]
    batches = [(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(ValueError, match=why):
        minidense.train(net, batches, batches, 1, 0.1, device=device, progress=False, verbose=False)
    assert all(torch.equal(b, p) for b, p in zip(before, net.parameters()))
