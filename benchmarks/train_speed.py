"""minidense vs the d2l pipeline it grew from, in one run, on the same Fashion-MNIST images.

The d2l side is built from d2l's own pieces: its DenseNet code (copied below from the chapter
"Densely Connected Networks"), torchvision's ``FashionMNIST`` on our data root with d2l's transforms
(``Resize`` then ``ToTensor``) and loader settings (shuffled, 4 worker processes), and
``d2l.train_ch6``. (``d2l.load_data_fashion_mnist`` itself hard-codes ``root="../data"`` and
downloads, so it is not called.) Install d2l without its pins: ``pip install --no-deps d2l==1.0.3``.

Printed, and written as JSON with ``--out``:

* images/s of each pipeline and their ratio, end to end (reading the data, training, evaluating)
  and for the training step alone (one batch already in memory);
* the hardware limit: the measured matmul peak divided by the FLOPs of one training image,
  and the fraction of it each training step reaches;
* the memory one training image costs (what autograd saves on the CPU,
  ``torch.cuda.max_memory_allocated`` on CUDA);
* an ablation: each lever of :func:`minidense.train` switched off (or on) alone.

Usage::

    python benchmarks/train_speed.py [--data DIR] [--out FILE]   # minutes
    python benchmarks/train_speed.py --smoke                     # seconds, for the tests
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/train_speed.py
                                        # a newer CPU limited to what an AVX2-only CPU can run
"""

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # train_ch6 draws an animated plot; off screen here

import torch
import torchvision
from d2l_reference import d2l_densenet
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

import minidense
from minidense.allocator import keep_freed_memory
from minidense.data import balanced_subset, data_root, load_fashion_mnist, resize_batch
from minidense.files import write_json
from minidense.hardware import device_name, resolve_levers
from minidense.history import provenance
from minidense.options import Levers
from minidense.precision import DTYPES, autocast, grad_scaler
from minidense.training import (
    RunningMetrics,
    evaluate_accuracy,
    inplace_relu_after_bn,
    levers_in_effect,
    prepared,
    training_step,
)

D2L_WORKERS = 4  # d2l.get_dataloader_workers()
# Set before the run, these make PyTorch's and oneDNN's kernels use at most AVX2 (no AVX-512, no
# native bf16): an AVX2-only CPU's instruction set on a newer CPU, recorded in the provenance.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
warnings.filterwarnings("ignore", message="This DataLoader will create")  # d2l's 4 workers on fewer cores
warnings.filterwarnings("ignore", message="Attempting to set identical low and high xlims")  # 1-epoch plot


# ---- the d2l data pipeline on our root and our subset ---------------------------------------------------

def d2l_loaders(batch_size, resize, root, num_train, num_test, workers=D2L_WORKERS):
    """d2l's ``load_data_fashion_mnist`` on ``root``, restricted to minidense's class-balanced subsets."""
    trans = transforms.Compose([transforms.Resize(resize), transforms.ToTensor()])
    loaders = []
    for train, count in ((True, num_train), (False, num_test)):
        dataset = torchvision.datasets.FashionMNIST(root=str(root), train=train, transform=trans, download=False)
        if count is not None:
            dataset = torch.utils.data.Subset(dataset, balanced_subset(dataset.targets, count).tolist())
        loaders.append(torch.utils.data.DataLoader(dataset, batch_size, shuffle=train, num_workers=workers))
    return tuple(loaders)


# ---- helpers ----------------------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_image(resize):
    """FLOPs of one training image (forward + backward) of the book's network, counted by PyTorch."""
    net = minidense.densenet()
    X = torch.zeros(2, 1, resize, resize)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(X), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() / 2


def seconds_of(fn, device):
    """Wall seconds of one call of ``fn`` (with the device synchronised before and after)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(device, dtype, sizes, repeats):
    """Best FLOP/s of square matmuls in ``dtype``, over the ``sizes`` and ``repeats`` tries of each.

    Sizes go up until one product takes longer than a second (emulated bf16 runs at well under
    1 GFLOP/s: a 4096 x 4096 product would take minutes).
    """
    best = 0.0
    for size in sorted(sizes):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        product = functools.partial(torch.matmul, a, b)
        first = seconds_of(product, device)  # a warm-up, unless it is already too slow to repeat
        if first > 1.0:
            return max(best, 2 * size ** 3 / first)
        for _ in range(repeats):
            best = max(best, 2 * size ** 3 / seconds_of(product, device))
    return best


def saved_bytes_per_image(net, X, y, precision, device):
    """Memory one training image costs: what autograd saves for backward (CPU), or the CUDA peak."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with autocast(device, precision):
            loss = F.cross_entropy(net(X), y)
        loss.backward()
        net.zero_grad(set_to_none=True)
        return (torch.cuda.max_memory_allocated(device) - base) / len(y)
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            autocast(device, precision):
        loss = F.cross_entropy(net(X), y)
    loss.backward()
    net.zero_grad(set_to_none=True)
    return sum(seen.values()) / len(y)


def d2l_step(net, optimizer, X, y):
    """The body of ``d2l.train_ch6``'s loop, host synchronisations included."""
    import d2l.torch as d2l

    loss = nn.CrossEntropyLoss()
    metric = d2l.Accumulator(3)

    def step():
        optimizer.zero_grad()
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741 (d2l's name)
        l.backward()
        optimizer.step()
        with torch.no_grad():
            metric.add(l * X.shape[0], d2l.accuracy(y_hat, y), X.shape[0])
    return step


def minidense_step(stack, levers, X, y, lr, seed, device):
    """One call of the library's own :func:`minidense.training.training_step`, as :func:`minidense.train`
    makes it (under fp16 through a gradient scaler), with ``levers`` (resolved) in effect until ``stack`` closes."""
    torch.manual_seed(seed)
    net = minidense.densenet()
    model = prepared(net, levers, device)
    stack.enter_context(levers_in_effect(net, levers))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    metrics = RunningMetrics(device)
    X = X.contiguous(memory_format=levers.memory_format)
    scaler = grad_scaler(device, levers.precision)
    return lambda: training_step(model, optimizer, X, y, levers=levers, metrics=metrics, scaler=scaler)


def timed_rounds(steps, rounds, device):
    """Seconds of each step function: its first (warm-up) call, then the median of ``rounds``
    calls made in turns (one of each per round). Returns ``{name: (first, median)}``."""
    first = {name: seconds_of(step, device) for name, step in steps.items()}
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(seconds_of(step, device))
    return {name: (first[name], statistics.median(t)) for name, t in times.items()}


def iterate_seconds(batches, device):
    """Seconds of reading every batch of ``batches`` onto ``device``."""
    def read_all():
        for X, y in batches:
            X.to(device), y.to(device)
    return seconds_of(read_all, device)


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:(.*)$", text, re.M)
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
    return [f for f in (match.group(1).split() if match else []) if f in wanted]


def load_average():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# ---- the measurements, each in a process of its own ---------------------------------------------------
#
# malloc's settings are process-wide, and keep_freed_memory cannot give back glibc's start-up
# behaviour (see minidense.allocator). So every measurement runs in a fresh process: the rows with
# malloc as it comes never follow anything that kept freed memory, whatever the order below.

def _setting(args):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    levers = resolve_levers(Levers(), device, args.batch_size)
    return device, levers, data_root(args.data)


def _one_batch(args, device, root):
    step_iter, eval_iter = load_fashion_mnist(args.batch_size, args.resize, root, device, args.num_train,
                                              args.num_test, seed=args.seed)
    first = step_iter.order(0)[:args.batch_size].to(device)
    return resize_batch(step_iter.images[first], args.resize), step_iter.labels[first], eval_iter


def measure_hardware(args):
    device, levers, _ = _setting(args)
    flops = flops_per_image(args.resize)
    sizes, repeats = ((256,), 3) if args.smoke else ((512, 1024, 2048, 4096), 5)
    peaks = {precision: matmul_peak(device, DTYPES[precision], sizes, repeats)
             for precision in dict.fromkeys(("fp32", "bf16", levers.precision))}
    return {"flops_per_image": flops, "matmul_flops_per_sec": peaks,
            "limit_images_per_sec": {k: v / flops for k, v in peaks.items()}}


def measure_d2l_end_to_end(args):
    import d2l.torch as d2l

    device, _, root = _setting(args)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_loader, test_loader = d2l_loaders(args.batch_size, args.resize, root, args.num_train, args.num_test)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        d2l.train_ch6(d2l_densenet(), train_loader, test_loader, args.epochs, args.lr, device)
    seconds = time.perf_counter() - start
    lines = [line for line in printed.getvalue().splitlines() if "examples/sec" in line or "test acc" in line]
    return {"seconds": seconds, "images_per_sec": args.num_train * args.epochs / seconds, "printed": lines,
            "printed_examples_per_sec": float(re.search(r"([\d.]+) examples/sec", printed.getvalue()).group(1))}


def measure_minidense_end_to_end(args):
    device, levers, root = _setting(args)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_iter, test_iter = load_fashion_mnist(args.batch_size, args.resize, root, device, args.num_train,
                                               args.num_test, seed=args.seed)
    history = minidense.train(minidense.densenet(), train_iter, test_iter, args.epochs, args.lr, device,
                              levers=levers, progress=False, verbose=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_sec": args.num_train * args.epochs / seconds,
            "printed": history.summary(), "test_acc": history.last["test_acc"]}


def _evaluation_rates(args, device, levers, eval_iter, how):
    """Images/s of evaluating the test images at the training batch and at four times it."""
    net = minidense.densenet().to(device, memory_format=levers.memory_format)
    sizes = (args.batch_size, 4 * args.batch_size)
    passes = {size: functools.partial(evaluate_accuracy, net, eval_iter, device,
                                      levers=levers.replace(eval_batch_size=size)) for size in sizes}
    seconds = timed_rounds(passes, args.rounds, device)
    return {f"eval, batch {size}, {how}": args.num_test / seconds[size][1] for size in sizes}


def measure_steps_malloc_as_it_comes(args):
    """d2l's step, ours without any lever, and ours with every lever but kept memory; evaluation likewise."""
    device, levers, root = _setting(args)
    X, y, eval_iter = _one_batch(args, device, root)
    torch.manual_seed(args.seed)
    d2l_net = d2l_densenet().to(device)
    steps = {"d2l train_ch6 step": d2l_step(d2l_net, torch.optim.SGD(d2l_net.parameters(), lr=args.lr), X, y)}
    with contextlib.ExitStack() as stack:
        none = resolve_levers(Levers(precision="fp32", channels_last=False, inplace_relu=False, host_sync=True,
                                     keep_freed_memory=False), device)
        steps["no levers (fp32, contiguous, host sync)"] = minidense_step(stack, none, X, y, args.lr, args.seed, device)
        if levers.keep_freed_memory:
            steps["- keep freed memory"] = minidense_step(stack, levers.replace(keep_freed_memory=False), X, y,
                                                          args.lr, args.seed, device)
        seconds = timed_rounds(steps, args.rounds, device)
    evaluation = (_evaluation_rates(args, device, levers.replace(keep_freed_memory=False), eval_iter,
                                    "malloc as it comes") if levers.keep_freed_memory else {})
    return {"steps": seconds, "evaluation": evaluation}


def measure_steps_memory_kept(args):
    """Ours with the probed levers, and each lever off (or on) alone; evaluation likewise."""
    device, levers, root = _setting(args)
    X, y, eval_iter = _one_batch(args, device, root)
    with keep_freed_memory(levers.keep_freed_memory), contextlib.ExitStack() as stack:
        variants = {"minidense, all levers (probed defaults)": levers}
        if levers.precision != "fp32":
            variants[f"- {levers.precision} autocast"] = levers.replace(precision="fp32")
        if levers.channels_last:
            variants["- channels_last"] = levers.replace(channels_last=False)
        variants["- in-place ReLU after BN"] = levers.replace(inplace_relu=False)
        variants["+ host sync every step"] = levers.replace(host_sync=True)
        if args.compile:
            variants["+ torch.compile"] = levers.replace(compile=True)
        steps = {name: minidense_step(stack, v, X, y, args.lr, args.seed, device) for name, v in variants.items()}
        seconds = timed_rounds(steps, args.rounds, device)
        evaluation = _evaluation_rates(args, device, levers, eval_iter,
                                       "memory kept" if levers.keep_freed_memory else "malloc as it comes")
    return {"steps": seconds, "evaluation": evaluation}


def measure_data(args):
    """Images/s of the data alone: d2l's DataLoader, our on-device batches, and with the book's augmentation."""
    device, _, root = _setting(args)
    d2l_loader, _ = d2l_loaders(args.batch_size, args.resize, root, args.num_train, args.num_test)
    train_iter, _ = load_fashion_mnist(args.batch_size, args.resize, root, device, args.num_train, args.num_test,
                                       seed=args.seed)
    book = minidense.recipe("book")
    augmented = train_iter.augmented(book.translate, book.flip)
    rounds = {"plain": lambda: iterate_seconds(train_iter, device),
              "augmented": lambda: iterate_seconds(augmented, device)}
    seconds = {name: [] for name in rounds}
    for _ in range(max(3, args.rounds)):  # in turns: a burst of load hits both
        for name, fn in rounds.items():
            seconds[name].append(fn())
    return {"d2l DataLoader (PIL Resize + ToTensor, 4 workers)": args.num_train / iterate_seconds(d2l_loader, device),
            "minidense on-device batches (one interpolate per batch)":
                args.num_train / statistics.median(seconds["plain"]),
            f"minidense on-device batches, shifted (up to {book.translate} px) and flipped":
                args.num_train / statistics.median(seconds["augmented"])}


def measure_memory(args):
    device, levers, root = _setting(args)
    X, y, _ = _one_batch(args, device, root)
    Xs, ys = X[:min(len(y), 32)], y[:min(len(y), 32)]
    ours_net = minidense.densenet().to(device, memory_format=levers.memory_format)
    with inplace_relu_after_bn(ours_net):
        ours = saved_bytes_per_image(ours_net, Xs.contiguous(memory_format=levers.memory_format), ys,
                                     levers.precision, device)
    return {"what": "max_memory_allocated" if device.type == "cuda" else "tensors autograd saves for backward",
            "d2l": saved_bytes_per_image(d2l_densenet().to(device), Xs, ys, "fp32", device), "minidense": ours}


MEASUREMENTS = {f.__name__.removeprefix("measure_"): f for f in (
    measure_hardware, measure_d2l_end_to_end, measure_steps_malloc_as_it_comes, measure_minidense_end_to_end,
    measure_steps_memory_kept, measure_data, measure_memory)}


def measured(name, argv):
    """The result of measurement ``name``, made in a fresh Python process."""
    done = subprocess.run([sys.executable, __file__, *argv, "--measure", name], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args, argv):
    device, levers, _ = _setting(args)
    if -(-args.num_train // args.batch_size) < 5:
        raise SystemExit(f"d2l.train_ch6 divides by zero with fewer than 5 batches per epoch: "
                         f"{args.num_train} images in batches of {args.batch_size} make "
                         f"{-(-args.num_train // args.batch_size)}")
    result = {"provenance": {
        **provenance(device, levers=levers), "command": " ".join(["python", *sys.argv]), "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "instruction_set_limits": {
            name: os.environ[name] for name in ISA_LIMITS if name in os.environ},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torchvision": torchvision.__version__,
        "python": platform.python_version(), "load_average_before": load_average(),
        "processes": "one fresh process per measurement"},
        "settings": {"num_train": args.num_train, "num_test": args.num_test, "batch_size": args.batch_size,
                     "resize": args.resize, "lr": args.lr, "num_epochs": args.epochs, "step_rounds": args.rounds,
                     "smoke": args.smoke}}
    result["levers"] = {**dataclasses.asdict(levers), "on_device_data": True}
    print(f"device: {device} ({device_name(device)}); levers: {levers}")
    parts = {name: measured(name, argv) for name in MEASUREMENTS}

    result["hardware"] = hardware = parts["hardware"]
    flops, peaks = hardware["flops_per_image"], hardware["matmul_flops_per_sec"]
    print(f"one training image: {flops / 1e9:.3f} GFLOP; matmul peak fp32 {peaks['fp32'] / 1e9:.0f}, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    d2l_run, ours_run = parts["d2l_end_to_end"], parts["minidense_end_to_end"]
    result["end_to_end"] = {"d2l": d2l_run, "minidense": ours_run, "ratio": d2l_run["seconds"] / ours_run["seconds"]}
    print(f"end to end: d2l {d2l_run['images_per_sec']:.1f} images/s, minidense {ours_run['images_per_sec']:.1f} "
          f"images/s: {result['end_to_end']['ratio']:.2f}x")

    malloc, kept = parts["steps_malloc_as_it_comes"], parts["steps_memory_kept"]
    seconds = {"d2l train_ch6 step": malloc["steps"]["d2l train_ch6 step"], **kept["steps"],
               **{k: v for k, v in malloc["steps"].items() if k != "d2l train_ch6 step"}}
    limit = hardware["limit_images_per_sec"]
    d2l_rate = args.batch_size / seconds["d2l train_ch6 step"][1]
    ablation = []
    for name, (first_seconds, median) in seconds.items():
        rate = args.batch_size / median
        precision = levers.precision if (name not in ("d2l train_ch6 step", f"- {levers.precision} autocast")
                                         and not name.startswith("no levers")) else "fp32"
        ablation.append({"configuration": name, "images_per_sec": rate, "vs_d2l_step": rate / d2l_rate,
                         "precision": precision, "fraction_of_limit": rate / limit[precision],
                         "first_step_seconds": first_seconds})
    result["step"] = {"d2l": ablation[0], "minidense": ablation[1], "ratio": ablation[1]["vs_d2l_step"]}
    result["ablation"] = ablation
    result["evaluation_images_per_sec"] = {**malloc["evaluation"], **kept["evaluation"]}
    result["data_images_per_sec"] = data = parts["data"]
    plain, augmented = (v for k, v in data.items() if k.startswith("minidense"))
    step_seconds = args.batch_size / ablation[1]["images_per_sec"]
    result["augmentation"] = {
        "seconds_per_batch": args.batch_size * (1 / augmented - 1 / plain),
        "fraction_of_a_training_step": args.batch_size * (1 / augmented - 1 / plain) / step_seconds}
    result["memory_bytes_per_training_image"] = parts["memory"]
    result["provenance"]["load_average_after"] = load_average()

    print("ablation (training step, images/s):")
    for row in ablation:
        print(f"  {row['configuration']:<45} {row['images_per_sec']:8.1f}  {row['vs_d2l_step']:5.2f}x d2l  "
              f"{row['fraction_of_limit']:5.0%} of the {row['precision']} limit; first step "
              f"{row['first_step_seconds']:.2f} s")
    print("evaluation (images/s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["evaluation_images_per_sec"].items()))
    print("data alone (images/s): " + ", ".join(f"{k} {v:.1f}" for k, v in data.items()))
    print(f"augmentation: {result['augmentation']['fraction_of_a_training_step']:.1%} of a training step")
    print(f"load average before {result['provenance']['load_average_before']}, "
          f"after {result['provenance']['load_average_after']} on {os.cpu_count()} cores")
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a run of seconds (tiny images and counts)")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--num-train", type=int, help="training images (default 4096; smoke 80)")
    parser.add_argument("--num-test", type=int, help="test images (default 1024; smoke 32)")
    parser.add_argument("--batch-size", type=int, help="batch size (default 128; smoke 16)")
    parser.add_argument("--resize", type=int, help="image side (default 96; smoke 32)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs end to end (default 1)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate, both pipelines (d2l's 0.1)")
    parser.add_argument("--rounds", type=int, help="timed steps per configuration (default 5; smoke 1)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the ablation (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--measure", choices=list(MEASUREMENTS), help=argparse.SUPPRESS)  # one, in this process
    args = parser.parse_args(argv)
    defaults = dict(num_train=80, num_test=32, batch_size=16, resize=32, rounds=1) if args.smoke else dict(
        num_train=4096, num_test=1024, batch_size=128, resize=96, rounds=5)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(MEASUREMENTS[args.measure](args)))
        return None
    passed_on = [a for a in argv if a != "--out" and (not args.out or a != str(args.out))]
    result = run(args, passed_on)
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
