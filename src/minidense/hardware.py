"""Probe what the hardware does well, once per process, instead of assuming it.

bf16 doubles the speed of a CPU with native bf16 instructions (AVX-512 BF16, AMX) and makes an
AVX2-only CPU several times slower, where it is emulated. So the defaults of
:func:`minidense.train` come from these probes, not from a guess.
"""

import functools
import time

import torch
from torch import nn

__all__ = ["bf16_pays", "channels_last_pays", "device_name", "default_device", "device_report"]


def default_device():
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _best_time(fn, repeats=3):
    fn()  # warm-up: kernel selection, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@functools.cache
def _cpu_bf16_pays():
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    fp32 = _best_time(lambda: a @ b)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = _best_time(lambda: a16 @ b16)
    return bf16 < fp32


def bf16_pays(device):
    """Whether bf16 autocast speeds up ``device``: CUDA with bf16 support, or a CPU with native bf16.

    On the CPU a 256x256 matmul is timed in both precisions (once per process; about 0.1 s where
    bf16 is emulated).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_bf16_pays()
    return False


@functools.cache
def _channels_last_pays(device_type):
    device = torch.device(device_type)
    block = nn.Sequential(nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 32, 3, padding=1)).to(device)
    X = torch.randn(32, 64, 24, 24, device=device)

    def step(memory_format):
        block.to(memory_format=memory_format)
        Y = X.contiguous(memory_format=memory_format).requires_grad_()

        def run():
            block(Y).sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    contiguous = _best_time(step(torch.contiguous_format))
    channels_last = _best_time(step(torch.channels_last))
    return channels_last < contiguous


def channels_last_pays(device):
    """Whether convolutions run faster on ``device`` in the channels-last memory format.

    Times the forward and backward pass of one BN-ReLU-Conv block of the book's size in both
    formats (once per process and device type).
    """
    return _channels_last_pays(torch.device(device).type)


def device_name(device):
    """A human name for ``device``: the GPU's model, or the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def device_report(device=None):
    """One line naming the device a chapter trains on; without CUDA, how to get a GPU in Colab."""
    device = torch.device(device) if device is not None else default_device()
    report = f"device: {device} ({device_name(device)})"
    if device.type != "cuda":
        report += ("\nNo GPU found, so training runs on the CPU. In Colab: Runtime > Change runtime type > "
                   "T4 GPU, then Runtime > Run all.")
    return report
