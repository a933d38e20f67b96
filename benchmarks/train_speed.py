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
import datetime
import functools
import io
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # train_ch6 draws an animated plot; off screen here

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision import transforms  # noqa: E402

import minidense  # noqa: E402
from minidense.allocator import can_keep_freed_memory, keep_freed_memory  # noqa: E402
from minidense.data import balanced_subset, data_root, load_fashion_mnist, resize_batch  # noqa: E402
from minidense.hardware import bf16_pays, channels_last_pays, device_name  # noqa: E402
from minidense.training import default_eval_batch_size, evaluate_accuracy, inplace_relu_after_bn  # noqa: E402
from minidense.history import git_commit  # noqa: E402

D2L_WORKERS = 4  # d2l.get_dataloader_workers()
# Set before the run, these make PyTorch's and oneDNN's kernels use at most AVX2 (no AVX-512, no
# native bf16): an AVX2-only CPU's instruction set on a newer CPU, recorded in the provenance.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
warnings.filterwarnings("ignore", message="This DataLoader will create")  # d2l's 4 workers on fewer cores
warnings.filterwarnings("ignore", message="Attempting to set identical low and high xlims")  # 1-epoch plot


# ---- d2l's network, as its DenseNet chapter writes it -------------------------------------------------

def d2l_conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class D2LDenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super().__init__()
        layer = []
        for i in range(num_convs):
            layer.append(d2l_conv_block(num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def d2l_transition_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


def d2l_densenet():
    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(D2LDenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(d2l_transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(
        b1, *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(num_channels, 10))


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
        first = seconds_of(lambda: a @ b, device)  # a warm-up, unless it is already too slow to repeat
        if first > 1.0:
            return max(best, 2 * size ** 3 / first)
        for _ in range(repeats):
            best = max(best, 2 * size ** 3 / seconds_of(lambda: a @ b, device))
    return best


def saved_bytes_per_image(net, X, y, bf16, device):
    """Memory one training image costs: what autograd saves for backward (CPU), or the CUDA peak."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(X), y)
        loss.backward()
        net.zero_grad(set_to_none=True)
        return (torch.cuda.max_memory_allocated(device) - base) / len(y)
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
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


def minidense_step(net, optimizer, X, y, bf16, host_sync):
    """The body of :func:`minidense.train`'s loop: metrics stay on the device unless ``host_sync``."""
    loss_sum = torch.zeros((), device=X.device)
    correct = torch.zeros((), dtype=torch.int64, device=X.device)

    def step():
        nonlocal loss_sum, correct
        with torch.autocast(X.device.type, dtype=torch.bfloat16, enabled=bf16):
            y_hat = net(X)
            loss = F.cross_entropy(y_hat, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach().float() * len(y)
            correct += (y_hat.argmax(dim=1) == y).sum()
        if host_sync:
            loss_sum.item(), correct.item()
    return step


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


# ---- the benchmark ------------------------------------------------------------------------------------

def run(args):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    root = data_root(args.data)
    batch_size, resize, lr = args.batch_size, args.resize, args.lr
    if -(-args.num_train // batch_size) < 5:
        raise SystemExit(f"d2l.train_ch6 divides by zero with fewer than 5 batches per epoch: "
                         f"{args.num_train} images in batches of {batch_size} make "
                         f"{-(-args.num_train // batch_size)}")
    result = {"provenance": {
        "command": " ".join(["python", *sys.argv]), "date": datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "device_name": device_name(device), "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "instruction_set_limits": {
            name: os.environ[name] for name in ISA_LIMITS if name in os.environ},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "python": platform.python_version(), "git_commit": git_commit(),
        "load_average_before": load_average()},
        "settings": {"num_train": args.num_train, "num_test": args.num_test, "batch_size": batch_size,
                     "resize": resize, "lr": lr, "num_epochs": args.epochs, "step_rounds": args.rounds,
                     "smoke": args.smoke}}

    # levers as the probes choose them
    bf16 = bf16_pays(device)
    channels_last = channels_last_pays(device, bf16)
    eval_batch_size = default_eval_batch_size(batch_size, device)
    keep_memory = device.type == "cpu" and can_keep_freed_memory()
    result["levers"] = {"bf16": bf16, "channels_last": channels_last, "inplace_relu": True,
                        "host_sync": False, "eval_batch_size": eval_batch_size, "compile": False,
                        "on_device_data": True, "keep_freed_memory": keep_memory}
    print(f"device: {device} ({device_name(device)}); probed levers: bf16={bf16}, "
          f"channels_last={channels_last}, keep_freed_memory={keep_memory}; eval batch {eval_batch_size}")

    # ---- hardware limit
    flops = flops_per_image(resize)
    sizes, repeats = ((256,), 3) if args.smoke else ((512, 1024, 2048, 4096), 5)
    peaks = {precision: matmul_peak(device, dtype, sizes, repeats)
             for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    result["hardware"] = {"flops_per_image": flops, "matmul_flops_per_sec": peaks,
                          "limit_images_per_sec": {k: v / flops for k, v in peaks.items()}}
    print(f"one training image: {flops / 1e9:.3f} GFLOP; matmul peak fp32 {peaks['fp32'] / 1e9:.0f}, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; limit {peaks['fp32'] / flops:.0f} (fp32) / "
          f"{peaks['bf16'] / flops:.0f} (bf16) images/s")

    # ---- the training step of one batch of the real images, already in memory
    step_iter, eval_iter = load_fashion_mnist(batch_size, resize, root, device, args.num_train, args.num_test,
                                              seed=args.seed)
    first = step_iter.order(0)[:batch_size].to(device)
    X, y = resize_batch(step_iter.images[first], resize), step_iter.labels[first]

    def ours(bf16=bf16, channels_last=channels_last, inplace_relu=True, host_sync=False, compile=False):
        torch.manual_seed(args.seed)
        net = minidense.densenet().to(device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net.to(memory_format=memory_format)
        if inplace_relu:
            stack.enter_context(inplace_relu_after_bn(net))
        model = torch.compile(net) if compile else net
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        return minidense_step(model, optimizer, X.contiguous(memory_format=memory_format), y, bf16, host_sync)

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    eval_net = minidense.densenet().to(device, memory_format=memory_format)

    def evaluation_rates(keep, how):
        """Images/s of evaluating the test images at the training batch and at four times it
        (after a warm-up of each, the median of ``args.rounds`` passes taken in turns)."""
        eval_batch_sizes = (batch_size, 4 * batch_size)
        passes = {size: functools.partial(evaluate_accuracy, eval_net, eval_iter, device, bf16, memory_format,
                                          size, keep_freed_memory=keep) for size in eval_batch_sizes}
        seconds = timed_rounds(passes, args.rounds, device)
        return {f"eval, batch {size}" + (f", {how}" if how else ""): args.num_test / seconds[size][1]
                for size in eval_batch_sizes}

    # malloc's settings are process-wide and keep_freed_memory cannot give back glibc's start-up
    # behaviour (see minidense.allocator), so everything that runs with malloc as it comes, d2l's
    # pipeline first, runs before anything keeps freed memory
    import d2l.torch as d2l

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_loader, test_loader = d2l_loaders(batch_size, resize, root, args.num_train, args.num_test)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        d2l.train_ch6(d2l_densenet(), train_loader, test_loader, args.epochs, lr, device)
    d2l_seconds = time.perf_counter() - start
    matplotlib.pyplot.close("all")
    d2l_lines = [line for line in printed.getvalue().splitlines() if "examples/sec" in line or "test acc" in line]
    d2l_printed = float(re.search(r"([\d.]+) examples/sec", printed.getvalue()).group(1))

    torch.manual_seed(args.seed)
    d2l_net = d2l_densenet().to(device)
    with contextlib.ExitStack() as stack:
        as_malloc_does = {"d2l train_ch6 step": d2l_step(d2l_net, torch.optim.SGD(d2l_net.parameters(), lr=lr), X, y),
                          "no levers (fp32, contiguous, host sync)": ours(bf16=False, channels_last=False,
                                                                          inplace_relu=False, host_sync=True)}
        if keep_memory:
            as_malloc_does["- keep freed memory"] = ours()
        seconds = timed_rounds(as_malloc_does, args.rounds, device)
    eval_seconds = evaluation_rates(False, "malloc as it comes") if keep_memory else {}

    # ---- end to end: reading the data, training, evaluating
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_iter, test_iter = load_fashion_mnist(batch_size, resize, root, device, args.num_train, args.num_test,
                                               seed=args.seed)
    history = minidense.train(minidense.densenet(), train_iter, test_iter, args.epochs, lr, device,
                              plot=False, progress=False, verbose=False)
    ours_seconds = time.perf_counter() - start
    images = args.num_train * args.epochs
    result["end_to_end"] = {
        "d2l": {"seconds": d2l_seconds, "images_per_sec": images / d2l_seconds, "printed": d2l_lines,
                "printed_examples_per_sec": d2l_printed},
        "minidense": {"seconds": ours_seconds, "images_per_sec": images / ours_seconds,
                      "printed": history.summary(), "test_acc": history.last["test_acc"]},
        "ratio": d2l_seconds / ours_seconds}
    print(f"end to end ({images:,} training + {args.num_test * args.epochs:,} test images): d2l "
          f"{images / d2l_seconds:.1f} images/s ({d2l_seconds:.1f} s; d2l prints {d2l_printed:.1f} examples/s), "
          f"minidense {images / ours_seconds:.1f} images/s ({ours_seconds:.1f} s): "
          f"{d2l_seconds / ours_seconds:.2f}x")

    # ---- the ablation: each lever off (or on) alone, as minidense.train runs it
    with contextlib.ExitStack() as stack:
        stack.enter_context(keep_freed_memory(keep_memory))
        kept = {"minidense, all levers (probed defaults)": ours()}
        if bf16:
            kept["- bf16 autocast"] = ours(bf16=False)
        if channels_last:
            kept["- channels_last"] = ours(channels_last=False)
        kept["- in-place ReLU after BN"] = ours(inplace_relu=False)
        kept["+ host sync every step"] = ours(host_sync=True)
        if args.compile:
            kept["+ torch.compile"] = ours(compile=True)
        seconds.update(timed_rounds(kept, args.rounds, device))
    order = ["d2l train_ch6 step", *kept, *(name for name in as_malloc_does if name != "d2l train_ch6 step")]
    seconds = {name: seconds[name] for name in order}
    limit = result["hardware"]["limit_images_per_sec"]
    d2l_step_rate = batch_size / seconds["d2l train_ch6 step"][1]
    ablation = []
    for name, (first_seconds, s) in seconds.items():
        rate = batch_size / s
        precision = "bf16" if (bf16 and name not in ("d2l train_ch6 step", "- bf16 autocast")
                               and not name.startswith("no levers")) else "fp32"
        ablation.append({"configuration": name, "images_per_sec": rate, "vs_d2l_step": rate / d2l_step_rate,
                         "precision": precision, "fraction_of_limit": rate / limit[precision],
                         "first_step_seconds": first_seconds})
    ours_step = ablation[1]
    result["step"] = {"d2l": ablation[0], "minidense": ours_step, "ratio": ours_step["vs_d2l_step"]}
    result["ablation"] = ablation

    # ---- evaluation at the training batch and four times it, with freed memory kept
    eval_seconds.update(evaluation_rates(keep_memory, "memory kept" if keep_memory else ""))
    d2l_loader, _ = d2l_loaders(batch_size, resize, root, args.num_train, args.num_test)
    data_rates = {"d2l DataLoader (PIL Resize + ToTensor, 4 workers)":
                  args.num_train / iterate_seconds(d2l_loader, device),
                  "minidense on-device batches (one interpolate per batch)":
                  args.num_train / iterate_seconds(train_iter, device)}
    result["evaluation_images_per_sec"] = eval_seconds
    result["data_images_per_sec"] = data_rates

    # ---- memory per training image
    Xs, ys = X[:min(len(y), 32)], y[:min(len(y), 32)]
    d2l_net = d2l_densenet().to(device)
    ours_net = minidense.densenet().to(device, memory_format=memory_format)
    with inplace_relu_after_bn(ours_net):
        ours_bytes = saved_bytes_per_image(ours_net, Xs.contiguous(memory_format=memory_format), ys, bf16, device)
    d2l_bytes = saved_bytes_per_image(d2l_net, Xs, ys, False, device)
    result["memory_bytes_per_training_image"] = {
        "what": "max_memory_allocated" if device.type == "cuda" else "tensors autograd saves for backward",
        "d2l": d2l_bytes, "minidense": ours_bytes}
    result["provenance"]["load_average_after"] = load_average()

    print(f"training step, batch {batch_size}: d2l {d2l_step_rate:.1f} images/s "
          f"({ablation[0]['fraction_of_limit']:.0%} of the fp32 limit), minidense "
          f"{ours_step['images_per_sec']:.1f} images/s ({ours_step['fraction_of_limit']:.0%} of the "
          f"{ours_step['precision']} limit): {ours_step['vs_d2l_step']:.2f}x")
    print(f"memory per training image: d2l {d2l_bytes / 2**20:.2f} MiB, minidense {ours_bytes / 2**20:.2f} MiB")
    print("\nablation (training step, images/s):")
    for row in ablation:
        print(f"  {row['configuration']:<45} {row['images_per_sec']:8.1f}  {row['vs_d2l_step']:5.2f}x d2l  "
              f"{row['fraction_of_limit']:5.0%} of the {row['precision']} limit; first step "
              f"{row['first_step_seconds']:.2f} s")
    print("evaluation (images/s): " + ", ".join(f"{k} {v:.1f}" for k, v in eval_seconds.items()))
    print("data alone (images/s): " + ", ".join(f"{k} {v:.1f}" for k, v in data_rates.items()))
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
    args = parser.parse_args(argv)
    defaults = dict(num_train=80, num_test=32, batch_size=16, resize=32, rounds=1) if args.smoke else dict(
        num_train=4096, num_test=1024, batch_size=128, resize=96, rounds=5)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
