"""Probe what the hardware does well, once per machine, instead of assuming it.

bf16 doubles the speed of a CPU with native bf16 instructions (AVX-512 BF16, AMX) and makes an
AVX2-only CPU several times slower, where it is emulated. So the defaults of the speed levers
(:class:`minidense.Levers`) come from these probes, not from a guess, and are decided in one place,
:func:`resolve_levers`, for :func:`minidense.train`, the experiment runner and the benchmarks alike.

A probe's answer is kept in ``~/.cache/minidense/probes.json``, keyed by what could change it (the
device's name, the instruction set PyTorch and oneDNN use, the torch version, the number of threads),
so every later run on the machine uses the same levers: a burst of load during one probe cannot flip
a lever from one run to the next. :func:`forget_probes` makes the next call measure again.
"""

import contextlib
import functools
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from minidense import allocator
from minidense._checks import check_positive_int
from minidense.files import atomic_write
from minidense.options import Levers
from minidense.precision import autocast, check_precision, cuda_precision

__all__ = ["resolve_levers", "default_eval_batch_size", "default_precision", "bf16_pays", "channels_last_pays",
           "forget_probes", "network_slice", "device_name", "default_device", "device_report"]


def default_device():
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_levers(levers, device, batch_size=None):
    """``levers`` with every ``None`` decided for ``device``: the one place the levers' defaults are chosen.

    the precision the device computes natively (:func:`default_precision`), channels-last where it
    pays in that precision (:func:`channels_last_pays`), freed memory kept on a CPU (where the C library allows it), and
    the evaluation batch from the training batch ``batch_size`` (:func:`default_eval_batch_size`;
    without it, the test set's own batches are kept). A field already set stays as it is.
    """
    if not isinstance(levers, Levers):
        raise TypeError(f"levers must be a minidense.Levers, got {type(levers).__name__}")
    device = torch.device(device)
    precision = default_precision(device) if levers.precision is None else levers.precision
    channels_last = channels_last_pays(device, precision) if levers.channels_last is None else levers.channels_last
    eval_batch_size = levers.eval_batch_size
    if eval_batch_size is None and batch_size is not None:
        eval_batch_size = default_eval_batch_size(batch_size, device)
    keep = device.type == "cpu" if levers.keep_freed_memory is None else levers.keep_freed_memory
    return levers.replace(precision=precision, channels_last=channels_last, eval_batch_size=eval_batch_size,
                          keep_freed_memory=bool(keep) and allocator.can_keep_freed_memory())


def default_eval_batch_size(batch_size, device="cpu"):
    """Evaluation batch for a training batch of ``batch_size`` on ``device``.

    On a GPU four times as large, at most 1,024: under ``torch.inference_mode`` no activation is
    kept for a backward pass, and fewer, larger batches pay less per-batch overhead (Python,
    kernel launches). On a CPU the training batch itself: there a larger batch was never faster
    (the chapter "Making training fast" measures both).
    """
    check_positive_int("batch_size", batch_size)
    if torch.device(device).type == "cuda":
        return min(4 * batch_size, 1024)
    return batch_size


@contextlib.contextmanager
def _probe_conditions(device):
    """Yield the clock a probe reads: on a CPU, the thread's CPU time with one intra-op thread.

    Other processes sharing the machine make wall times of a multi-threaded kernel swing tenfold
    (its threads wait for each other whenever one is descheduled). One thread's CPU time counts
    only the work done, so a comparison between two ways of doing the same work stays stable.
    On CUDA the clock is the wall time (with a synchronisation in the timed function).
    """
    if device.type != "cpu":
        yield time.perf_counter
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield time.thread_time
    finally:
        torch.set_num_threads(threads)


def _median_time_ratio(baseline, candidate, device, rounds=5):
    """Median over ``rounds`` of (candidate's time / baseline's time), each pair timed back to back.

    The two are timed in turns (alternating which goes first) and the median of the per-round
    ratios ignores the odd round that a burst of load spoiled.
    """
    with _probe_conditions(device) as clock:
        for fn in (baseline, candidate, baseline, candidate):
            fn()  # warm-up: kernel selection, allocation

        def seconds(fn):
            start = clock()
            fn()
            return clock() - start

        ratios = []
        for r in range(rounds):
            if r % 2:
                c = seconds(candidate)
                b = seconds(baseline)
            else:
                b = seconds(baseline)
                c = seconds(candidate)
            ratios.append(c / b)
    return statistics.median(ratios)


def _probe_file():
    return Path.home() / ".cache" / "minidense" / "probes.json"


def _probe_key(device, question):
    device = torch.device(device)
    if device.type == "cpu":
        where = (f"{device_name(device)}; {torch.backends.cpu.get_cpu_capability()}; native bf16 "
                 f"{_cpu_has_native_bf16()}; {torch.get_num_threads()} threads")
    else:
        where = device_name(device)
    return f"{question} on {device.type} ({where}), torch {torch.__version__}"


def _remembered(device, question, measure):
    """The answer to ``question`` from the probe file, else ``measure()``, which is then stored."""
    path, key = _probe_file(), _probe_key(device, question)
    try:
        answers = json.loads(path.read_text())
    except (OSError, ValueError):
        answers = {}
    if not isinstance(answers, dict):
        answers = {}
    if isinstance(answers.get(key), bool):
        return answers[key]
    answers[key] = answer = bool(measure())
    try:
        text = json.dumps(answers, indent=1, sort_keys=True) + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text))
    except OSError:
        pass  # a read-only home: the answer still holds for this process
    return answer


def forget_probes():
    """Delete the stored probe answers: the next :func:`bf16_pays` and :func:`channels_last_pays` measure again."""
    _probe_file().unlink(missing_ok=True)
    _cpu_bf16_pays.cache_clear()
    _channels_last_pays.cache_clear()


def _cpu_has_native_bf16():
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return True if check is None else bool(check())


def _cpu_bf16_matmul_is_faster():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=generator), torch.randn(256, 256, generator=generator)
    a16, b16 = a.bfloat16(), b.bfloat16()
    return _median_time_ratio(lambda: a @ b, lambda: a16 @ b16, torch.device("cpu")) < 1


@functools.cache
def _cpu_bf16_pays():
    if not _cpu_has_native_bf16():
        return False
    return _remembered("cpu", "bf16 matmul faster than fp32", _cpu_bf16_matmul_is_faster)


def bf16_pays(device):
    """Whether bf16 autocast speeds up ``device``: a GPU with native bf16, or a CPU with native bf16.

    On CUDA the GPU's compute capability decides (:func:`minidense.precision.cuda_precision`; never
    ``torch.cuda.is_bf16_supported()``, which counts emulated bf16). On the CPU oneDNN must report
    native bf16 support, and a 256x256 matmul is then timed in both precisions in back-to-back pairs
    (a fraction of a second, once per machine: the answer is stored, see the module's docstring).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_precision(torch.cuda.get_device_capability(device)) == "bf16"
    if device.type == "cpu":
        return _cpu_bf16_pays()
    return False


def default_precision(device):
    """The precision ``device`` trains fastest in (:mod:`minidense.precision` says what each one is).

    On CUDA from the GPU's compute capability (:func:`minidense.precision.cuda_precision`: bf16 from
    8.0, fp16 from 7.0, e.g. on Colab's T4, else fp32); on a CPU ``"bf16"`` where :func:`bf16_pays`,
    else ``"fp32"``; on any other device ``"fp32"``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_precision(torch.cuda.get_device_capability(device))
    if device.type == "cpu" and bf16_pays(device):
        return "bf16"
    return "fp32"


def network_slice():
    """The first part of the book's network, a representative probe: stem, dense block 1, transition 1.

    Built with the global RNG left untouched. Shapes: ``(N, 1, 96, 96) -> (N, 96, 12, 12)``.
    """
    from minidense.models import densenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = densenet()
    return nn.Sequential(net.stem, net.denseblock1, net.transition1)


def _training_step(part, X, device, precision):
    def run():
        with autocast(device, precision):
            out = part(X)
        out.float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return run


def _channels_last_step_is_faster(device, precision):
    X = torch.rand(4, 1, 96, 96, generator=torch.Generator().manual_seed(0)).to(device)
    steps = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        part = network_slice().to(device, memory_format=memory_format)
        steps.append(_training_step(part, X.contiguous(memory_format=memory_format), device, precision))
    return _median_time_ratio(*steps, device) < 1


@functools.cache
def _channels_last_pays(device_type, precision):
    device = torch.device(device_type)
    return _remembered(device, f"channels-last training step faster ({precision})",
                       lambda: _channels_last_step_is_faster(device, precision))


def channels_last_pays(device, precision="fp32"):
    """Whether training runs faster on ``device`` in the channels-last memory format.

    Times one training step (forward and backward, 4 images at 96x96) of a slice of the book's
    network (:func:`network_slice`) in both formats, in five back-to-back pairs, and compares the
    median ratio (under a second on a CPU, where it counts one thread's CPU time so that other
    processes' load does not decide the answer; once per machine and precision: the answer is
    stored, see the module's docstring). The answer depends on
    the precision: on a CPU with native bf16, oneDNN's bf16 convolutions want channels-last far
    more than its fp32 ones do, so pass the ``precision`` that training will use (``True`` and
    ``False``, the old ``bf16`` switch, mean bf16 and fp32).
    """
    if isinstance(precision, bool):
        precision = "bf16" if precision else "fp32"
    return _channels_last_pays(torch.device(device).type, check_precision(precision))


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
    """One line naming the device a chapter trains on and the precision it trains in there (e.g.
    ``device: cuda:0 (Tesla T4), training in fp16``); without CUDA, how to get a GPU in Colab."""
    device = torch.device(device) if device is not None else default_device()
    report = f"device: {device} ({device_name(device)}), training in {default_precision(device)}"
    if device.type != "cuda":
        report += ("\nNo GPU found, so training runs on the CPU. In Colab: Runtime > Change runtime type > "
                   "T4 GPU, then Runtime > Run all.")
    return report
