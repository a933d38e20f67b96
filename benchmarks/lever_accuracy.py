"""Do the speed levers cost accuracy? Train the book's network with them on and off, several seeds.

Each seed trains twice on the same images in the same order from the same initial weights: once
with the levers the probes choose (bf16 autocast, channels-last, in-place ReLU, the default eval
batches, freed memory kept) and once with all of them off (fp32, contiguous, d2l-sized eval
batches, malloc as it comes). The recipe is a profile's
(``cpu`` by default); ``--num-train``/``--num-test``/``--epochs`` shrink the budget when time is
short, and the JSON records what was run.

Usage::

    python benchmarks/lever_accuracy.py --seeds 0 1 2 --out book/results/speed-accuracy-cpu.json
"""

import argparse
import dataclasses
import json
import os
import statistics
from pathlib import Path

import torch

import minidense
from minidense.files import write_json
from minidense.history import provenance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="recipe and budget (default: cpu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-train", type=int, help="training images (default: the profile's)")
    parser.add_argument("--num-test", type=int, help="test images (default: the profile's)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the profile's)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    p = minidense.profile(args.profile)
    num_train, num_test = args.num_train or p.num_train, args.num_test or p.num_test
    num_epochs = args.epochs or p.num_epochs
    device = torch.device("cpu")
    on = minidense.resolve_levers(minidense.Levers(), device, p.batch_size)  # what the probes choose
    off = minidense.Levers(bf16=False, channels_last=False, inplace_relu=False, eval_batch_size=p.batch_size,
                           keep_freed_memory=False)
    runs = []
    for seed in args.seeds:
        for name, levers in (("levers on", on), ("levers off", off)):
            train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, p.resize, args.data, device,
                                                                 num_train, num_test, seed=seed)
            torch.manual_seed(seed)
            history = minidense.train(minidense.densenet(), train_iter, test_iter, num_epochs, device=device,
                                      recipe=p.recipe, levers=levers, progress=False)
            runs.append(dict(seed=seed, levers=name, **{k: history.last[k] for k in
                                                         ("train_loss", "train_acc", "test_acc")},
                             examples_per_sec=history.examples_per_sec, settings=dataclasses.asdict(levers)))
            print(f"seed {seed}, {name}: {history.summary()}", flush=True)
    summary = {}
    for name in ("levers on", "levers off"):
        accs = [r["test_acc"] for r in runs if r["levers"] == name]
        summary[name] = {"mean_test_acc": statistics.mean(accs),
                         "std_test_acc": statistics.stdev(accs) if len(accs) > 1 else 0.0}
    result = {"provenance": {
        **provenance(device, p.name, recipe=minidense.recipe(p.recipe)), "torch_threads": torch.get_num_threads(),
        "load_average_start": list(os.getloadavg()), "num_train": num_train, "num_test": num_test,
        "num_epochs": num_epochs, "batch_size": p.batch_size}, "runs": runs, "summary": summary}
    write_json(args.out, result)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
