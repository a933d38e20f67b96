"""The GPU check: what only a CUDA GPU can show, in one command of at most 8 minutes, recorded.

Usage::

    python benchmarks/gpu_check.py [--data DIR] [--out FILE]

Each part runs in processes of its own, under a time budget of its own (seconds; the whole check
stops starting parts once its 470 s are spent), and the record says what each one found:

=============  ======  =====================================================================================
part           budget  what it runs
=============  ======  =====================================================================================
``epochs``        105  one epoch of ``full`` (60,000 images, batch 256, d2l's recipe) in fp32, bf16 and fp16,
                       35 s each: images/s and test accuracy (an epoch that would take longer stops in time
                       to be evaluated within its budget; the record says how much of the epoch ran)
``resume``         35  ``train`` with a checkpoint on CUDA in fp16, stopped after one epoch and resumed:
                       the gradient scaler's state travels in the checkpoint
``torchrun``       30  ``torchrun --nproc_per_node=1 -m minidense train`` with the nccl backend
``memory``         15  bytes one training step of batch 256 at 96x96 allocates, in each precision,
                       against the 15 GiB of Colab's T4
``chapters``      100  every chapter under the ``smoke`` profile with nbmake, on CUDA, up to six at a time
``speed``          80  ``benchmarks/train_speed.py`` on CUDA: minidense against the d2l pipeline
``compile``       100  ``train`` on the ``cpu`` budget (two epochs) with ``--compile`` and without
=============  ======  =====================================================================================

The record goes to ``book/results/gpu-check-<GPU model>.json``, the GPU named in it. Without
CUDA the check says so and exits with 0, having run and written nothing. ``--rehearse`` runs the
chosen ``--parts`` on the CPU at the ``smoke`` sizes, with gloo for nccl: a test of this script,
never a record.
"""

import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 470  # seconds for the whole check: 8 minutes less what starting and writing take
PARTS = {"epochs": 105, "resume": 35, "torchrun": 30, "memory": 15, "chapters": 100, "speed": 80, "compile": 100}
T4_MEMORY = 15 * 2**30  # bytes of GPU memory a Colab T4 offers (nvidia-smi: 15360 MiB)
EVALUATION = 10  # seconds an epoch's process keeps for evaluating the 10,000 test images and exiting
CHAPTERS_AT_ONCE = max(1, min(6, (os.cpu_count() or 2) // 2))  # one GPU, but a kernel and a Python each
# A rehearsal trains on 256 images at 32x32 (on a 2-core CPU, fp16 is emulated and slow) with budgets this
# many times as long; it checks this script, not a GPU.
REHEARSAL = {"sizes": ["--resize", "32", "--num-train", "256", "--num-test", "128"], "slower": 4}


def _tail(text, lines=15):
    return "\n".join(text.strip().splitlines()[-lines:])


def run_command(command, timeout, env=None):
    """Run ``command`` from the repository's root for at most ``timeout`` seconds; with every process it
    started killed at the timeout. Returns ``{"returncode", "seconds", "timed_out", "output"}`` (output: the
    last lines of stdout and stderr together)."""
    start = time.perf_counter()
    process = subprocess.Popen([str(c) for c in command], cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=max(timeout, 1))
        timed_out = False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        timed_out = True
    return {"returncode": process.returncode, "seconds": round(time.perf_counter() - start, 1),
            "timed_out": timed_out, "output": _tail(output or "")}


def _status(done):
    return "stopped at its budget" if done["timed_out"] else "ok" if done["returncode"] == 0 else "failed"


def failures(part, where=()):
    """The places in a part's result whose status says it failed, as ``"part/sub"`` names."""
    if not isinstance(part, dict):
        return []
    found = ["/".join(where)] if str(part.get("status", "")).startswith("failed") else []
    return found + [f for key, value in part.items() for f in failures(value, (*where, key))]


def _last_json(done):
    """The JSON object a worker printed last, or None."""
    for line in reversed(done["output"].splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


class Check:
    """Where the check runs: the device, the data, the time left, and how each part trains."""

    def __init__(self, rehearse, root, deadline):
        self.rehearse = rehearse
        self.device = "cpu" if rehearse else "cuda"
        self.sizes = REHEARSAL["sizes"] if rehearse else []
        self.root = Path(root).resolve()
        self.deadline = deadline
        self.env = {"MINIDENSE_DATA": str(self.root)}  # absolute: nbmake runs the chapters from book/

    def left(self):
        return self.deadline - time.perf_counter()

    def python(self, *args):
        return [sys.executable, *args]

    def worker(self, name, *args):
        command = self.python(__file__, "--worker", name, "--data", self.root, *args)
        return command + (["--rehearse"] if self.rehearse else [])

    def train(self, *args, profile="smoke"):
        return self.python("-m", "minidense", "train", "--profile", profile, "--device", self.device,
                           "--data", self.root, *self.sizes, *args)


def part_epochs(check, budget, tmp):
    """One epoch of ``full`` in each precision (a third of the budget each)."""
    from minidense.precision import PRECISIONS

    results = {}
    for name in PRECISIONS:
        share = budget / len(PRECISIONS)
        until = time.time() + share - EVALUATION  # the process trains until then, whenever its first step came
        done = run_command(check.worker("epoch", "--precision", name, "--until", until), share, check.env)
        results[name] = {"status": _status(done), "seconds": done["seconds"], **(_last_json(done) or
                                                                                 {"output": done["output"]})}
    return results


def part_resume(check, budget, tmp):
    """d2l's recipe on the smoke budget in fp16 for two epochs: straight through, and stopped after one
    epoch and resumed from the checkpoint. Recorded: both runs' last loss and accuracy (cuDNN's kernels need
    not add in the same order twice, so they may differ a little) and the scaler's state in the checkpoint."""
    common = ["--recipe", "d2l", "--precision", "fp16"]
    checkpoint = tmp / "resume.pt"
    steps = {"uninterrupted": check.train(*common, "--epochs", 2, "--out", tmp / "straight.json"),
             "first epoch": check.train(*common, "--epochs", 1, "--checkpoint", checkpoint, "--out", tmp / "one.json"),
             "resumed": check.train(*common, "--epochs", 2, "--checkpoint", checkpoint, "--resume",
                                    "--out", tmp / "resumed.json")}
    result = {}
    for name, command in steps.items():
        done = run_command(command, budget / 3, check.env)
        result[name] = {"status": _status(done), "seconds": done["seconds"]}
        if done["returncode"] != 0:
            result[name]["output"] = done["output"]
            return result
    straight, resumed = (json.loads((tmp / f).read_text())["records"] for f in ("straight.json", "resumed.json"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    result.update(epochs_resumed=len(resumed), train_loss=[straight[-1]["train_loss"], resumed[-1]["train_loss"]],
                  test_acc=[straight[-1]["test_acc"], resumed[-1]["test_acc"]],
                  checkpoint_scaler=state.get("scaler"))
    return result


def part_torchrun(check, budget, tmp):
    """One process under torchrun: the process group, DDP and the collectives (nccl; gloo when rehearsing)."""
    command = check.python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "minidense",
                           "train", "--profile", "smoke", "--device", check.device, "--data", check.root,
                           "--backend", "gloo" if check.rehearse else "nccl", "--out", tmp / "torchrun.json",
                           *check.sizes)
    done = run_command(command, budget, check.env)
    result = {"status": _status(done), "seconds": done["seconds"]}
    if done["returncode"] == 0:
        history = json.loads((tmp / "torchrun.json").read_text())
        result.update(backend=history["provenance"].get("backend"), world_size=history["provenance"].get("world_size"),
                      test_acc=history["records"][-1]["test_acc"])
    else:
        result["output"] = done["output"]
    return result


def part_memory(check, budget, tmp):
    done = run_command(check.worker("memory"), budget, check.env)
    return {"status": _status(done), "seconds": done["seconds"], **(_last_json(done) or {"output": done["output"]})}


def part_chapters(check, budget, tmp):
    """Every chapter under nbmake with the smoke profile, a few at a time, until the budget is spent."""
    chapters = sorted((ROOT / "book").glob("*.ipynb"))
    if check.rehearse:
        chapters = chapters[:1]
    end = time.perf_counter() + budget
    env = {**check.env, "MINIDENSE_PROFILE": "smoke"}

    def one(chapter):
        left = end - time.perf_counter()
        if left < 5:
            return {"status": "not run: the part's budget was spent"}
        done = run_command(check.python("-m", "pytest", chapter.relative_to(ROOT), "--nbmake", "-p", "no:cacheprovider",
                                        "-o", "addopts=", "-q", f"--nbmake-timeout={int(left)}"), left, env)
        result = {"status": _status(done), "seconds": done["seconds"]}
        if done["returncode"] != 0:
            result["output"] = done["output"]
        return result

    with concurrent.futures.ThreadPoolExecutor(CHAPTERS_AT_ONCE) as pool:
        results = dict(zip((c.stem for c in chapters), pool.map(one, chapters)))
    passed = sum(r["status"] == "ok" for r in results.values())
    return {"passed": passed, "of": len(results), "chapters": results}


def part_speed(check, budget, tmp):
    """The speed benchmark's rows on this device (it needs d2l: ``pip install --no-deps d2l==1.0.3``)."""
    if importlib.util.find_spec("d2l") is None:
        return {"status": "skipped: d2l is not installed (pip install --no-deps d2l==1.0.3)"}
    command = check.python(ROOT / "benchmarks" / "train_speed.py", "--device", check.device, "--data", check.root,
                           "--out", tmp / "speed.json", *(["--smoke"] if check.rehearse else []))
    done = run_command(command, budget, check.env)
    result = {"status": _status(done), "seconds": done["seconds"]}
    if done["returncode"] == 0:
        speed = json.loads((tmp / "speed.json").read_text())
        result.update({key: speed[key] for key in ("settings", "end_to_end", "step", "ablation", "levers",
                                                   "memory_bytes_per_training_image") if key in speed})
    else:
        result["output"] = done["output"]
    return result


def part_compile(check, budget, tmp):
    """Two epochs of the ``cpu`` budget with ``torch.compile`` and without: the first epoch pays for compiling."""
    result = {}
    for name, flag, share in (("compiled", "--compile", 0.75), ("eager", "--no-compile", 0.25)):
        out = tmp / f"{name}.json"
        done = run_command(check.train(flag, "--out", out, profile="cpu"), budget * share, check.env)
        result[name] = {"status": _status(done), "seconds": done["seconds"]}
        if done["returncode"] == 0:
            records = json.loads(out.read_text())["records"]
            result[name].update(images_per_sec=[r["examples_per_sec"] for r in records],
                                epoch_seconds=[r["seconds"] for r in records], test_acc=records[-1]["test_acc"])
        else:
            result[name]["output"] = done["output"]
    return result


PART_FUNCTIONS = {"epochs": part_epochs, "resume": part_resume, "torchrun": part_torchrun, "memory": part_memory,
                  "chapters": part_chapters, "speed": part_speed, "compile": part_compile}


# ---- workers: run as ``gpu_check.py --worker NAME`` in a process of their own ---------------------------------

class Budgeted:
    """The batches of ``batches`` until the time ``until`` (of ``time.time()``), at least one: an epoch that
    stops at a time budget. Its length and the attributes :func:`minidense.train` reads are the wrapped
    batches'; ``yielded`` counts the images it gave."""

    def __init__(self, batches, until):
        self.batches, self.until, self.yielded = batches, until, 0

    def __len__(self):
        return len(self.batches)

    def __getattr__(self, name):
        return getattr(self.batches, name)

    def __iter__(self):
        for X, y in self.batches:
            yield X, y
            self.yielded += len(y)
            if time.time() > self.until:
                return


def worker_epoch(args):
    import minidense
    from minidense.options import Levers

    p = minidense.profile("smoke" if args.rehearse else "full")
    device = "cpu" if args.rehearse else "cuda"
    resize = 32 if args.rehearse else p.resize
    train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, resize, args.data, device, p.num_train,
                                                         p.num_test)
    budgeted = Budgeted(train_iter, args.until)
    torch.manual_seed(0)
    history = minidense.train(minidense.densenet(), budgeted, test_iter, 1, device=device, recipe="d2l",
                              levers=Levers(precision=args.precision), profile=p.name, progress=False,
                              verbose=False)
    record = history.last
    return {"precision": history.provenance["precision"], "images": budgeted.yielded,
            "fraction_of_epoch": budgeted.yielded / train_iter.num_examples,
            "images_per_sec": record["examples_per_sec"], "train_seconds": record["seconds"],
            "train_loss": record["train_loss"], "test_acc": record["test_acc"],
            "skipped_steps": record.get("skipped_steps", 0)}


def worker_memory(args):
    """Bytes of one training step of ``full``'s batch at 96x96 in each precision (on CUDA the peak
    allocated during the step over what was allocated before it; rehearsed on the CPU: the activations
    autograd saves, at the smoke batch)."""
    import minidense
    from minidense.memory import saved_activation_bytes
    from minidense.precision import PRECISIONS, autocast, backward_and_step, grad_scaler

    device = torch.device("cpu" if args.rehearse else "cuda")
    batch = minidense.profile("smoke" if args.rehearse else "full").batch_size
    result = {"batch_size": batch, "resize": 96, "t4_bytes": T4_MEMORY, "bytes": {}}
    for name in PRECISIONS:
        torch.manual_seed(0)
        net = minidense.densenet().to(device)
        X, y = torch.rand(batch, 1, 96, 96, device=device), torch.randint(0, 10, (batch,), device=device)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            with autocast(device, name):
                loss = torch.nn.functional.cross_entropy(net(X), y)
            backward_and_step(loss, optimizer, grad_scaler(device, name))
            torch.cuda.synchronize()
            used = torch.cuda.max_memory_allocated() - before
        else:
            with autocast(device, name):
                used, _ = saved_activation_bytes(net, X)
        result["bytes"][name] = used
        result[f"{name}_share_of_t4"] = used / T4_MEMORY
        del net, X, y, optimizer
    return result


WORKERS = {"epoch": worker_epoch, "memory": worker_memory}


# ---- the check ------------------------------------------------------------------------------------------------

def gpu_description():
    """The GPU the check runs on, for the record."""
    properties = torch.cuda.get_device_properties(0)
    from minidense.precision import default_precision

    return {"gpu": properties.name, "compute_capability": f"{properties.major}.{properties.minor}",
            "memory_bytes": properties.total_memory, "gpus": torch.cuda.device_count(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "default_precision": default_precision("cuda")}


def slug(name):
    """A GPU's name as part of a file name: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def check_data(root):
    """Raise ``SystemExit`` naming ``MINIDENSE_DATA`` unless Fashion-MNIST can be read under ``root``."""
    from minidense.data import read_fashion_mnist

    try:
        for split in ("train", "test"):
            read_fashion_mnist(split, root)
    except (OSError, ValueError) as error:
        raise SystemExit(f"no usable Fashion-MNIST under {root} ({error}): pass --data DIR or set MINIDENSE_DATA, "
                         "before spending the GPU's minutes") from None


def run_check(args):
    from minidense.data import data_root
    from minidense.history import provenance

    start = time.perf_counter()
    slower = REHEARSAL["slower"] if args.rehearse else 1
    check = Check(args.rehearse, data_root(args.data), start + BUDGET * slower)
    check_data(check.root)
    described = {"rehearsal on the CPU": True} if args.rehearse else gpu_description()
    out = args.out or ROOT / "book" / "results" / f"gpu-check-{slug(described.get('gpu', 'cpu'))}.json"
    print(f"GPU check on {described.get('gpu', 'the CPU (a rehearsal)')}: {', '.join(args.parts)}; "
          f"at most {BUDGET} s; record: {out}", flush=True)
    record = {"provenance": {**provenance(check.device), **described}, "budget_seconds": BUDGET, "parts": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name in args.parts:
            budget = min(PARTS[name] * slower, check.left())
            if budget < 5:
                record["parts"][name] = {"status": "not run: the check's time was spent"}
            else:
                part_start = time.perf_counter()
                folder = Path(tmp) / name
                folder.mkdir()
                record["parts"][name] = {"budget_seconds": round(budget), **PART_FUNCTIONS[name](check, budget, folder),
                                         "part_seconds": round(time.perf_counter() - part_start, 1)}
            print(f"{name}: {json.dumps(record['parts'][name])[:400]}", flush=True)
    record["seconds"] = round(time.perf_counter() - start, 1)
    from minidense.files import write_json

    print(f"wrote {write_json(out, record)} after {record['seconds']} s")
    return record


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--out", type=Path, help="the record (default: book/results/gpu-check-<GPU>.json)")
    parser.add_argument("--parts", type=lambda text: text.split(","), default=list(PARTS),
                        help=f"which parts, comma-separated, in the order given (default: all: {','.join(PARTS)})")
    parser.add_argument("--rehearse", action="store_true", help="run the parts on the CPU at the smoke sizes: a test "
                        "of this script, not a record (needs --out)")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.rehearse and args.out is None and args.worker is None:
        parser.error("--rehearse needs --out FILE: a rehearsal is never a record under book/results/")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    if not args.rehearse and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}, but no GPU is visible" if torch.version.cuda else \
            "built without CUDA"
        print(f"No CUDA GPU here (torch {torch.__version__}, {built}): the GPU check runs only on a GPU. "
              "Nothing was run or recorded.")
        return 0
    record = run_check(args)
    failed = failures(record["parts"])
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
