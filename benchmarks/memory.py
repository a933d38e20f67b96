"""Saved activation memory vs depth: a naive DenseNet grows quadratically, a memory-efficient one linearly.

For the paper's CIFAR DenseNet (growth rate 12, no bottleneck) at several depths, measures the bytes
one forward pass keeps for the backward pass (:func:`minidense.memory.saved_activation_bytes`,
autograd's saved tensors, each storage once) in both modes, and fits ``a + b*L + c*L^2`` to each:

    python benchmarks/memory.py --out book/results/memory_vs_depth.json
    python benchmarks/memory.py --smoke        # three small depths, batch 1: seconds
"""

import argparse

import numpy as np
import torch

import minidense
from minidense.files import write_json
from minidense.history import provenance
from minidense.memory import saved_activation_bytes

DEPTHS = (40, 70, 100, 130, 160, 190)
SMOKE_DEPTHS = (16, 28, 40)


def measure(depths, growth_rate=12, batch_size=2, size=32):
    """One row per (depth, mode): saved bytes for one forward pass on a ``(batch_size, 3, size, size)`` batch."""
    torch.manual_seed(0)
    X = torch.randn(batch_size, 3, size, size)
    rows = []
    for depth in depths:
        net = minidense.cifar_densenet(depth, growth_rate)
        for memory_efficient in (False, True):
            net.memory_efficient = memory_efficient
            saved, _ = saved_activation_bytes(net, X)
            rows.append({"depth": depth, "memory_efficient": memory_efficient, "saved_bytes": saved})
    return rows


def fit(rows, memory_efficient):
    """Least-squares ``saved_bytes = a + b*L + c*L^2`` over the depths ``L`` of one mode."""
    points = [(r["depth"], r["saved_bytes"]) for r in rows if r["memory_efficient"] == memory_efficient]
    depth, saved = np.array(points, dtype=float).T
    c, b, a = np.polyfit(depth, saved, 2)
    return {"a": a, "b": b, "c": c}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="three small depths (CI)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)

    depths = SMOKE_DEPTHS if args.smoke else DEPTHS
    batch_size = 1 if args.smoke else args.batch_size
    rows = measure(depths, batch_size=batch_size)
    result = {
        "provenance": provenance(torch.device("cpu"), "smoke" if args.smoke else None, network="cifar_densenet",
                                 growth_rate=12, bottleneck=False, batch_size=batch_size,
                                 input_size=32, depths=list(depths)),
        "rows": rows,
        "fit": {"naive": fit(rows, False), "memory_efficient": fit(rows, True)},
    }
    print(f"{'depth':>5} {'naive MiB':>10} {'efficient MiB':>14} {'ratio':>6}")
    for depth in depths:
        naive, efficient = (r["saved_bytes"] for r in rows if r["depth"] == depth)
        print(f"{depth:>5} {naive / 2**20:>10.1f} {efficient / 2**20:>14.1f} {naive / efficient:>6.1f}")
    for mode, f in result["fit"].items():
        print(f"{mode}: bytes ~ {f['a']:.3g} + {f['b']:.3g} L + {f['c']:.3g} L^2")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
