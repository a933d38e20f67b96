"""Record the feature-reuse matrices (the paper's Figure 5) of the book's network after training.

Trains ``minidense.densenet()`` under a profile, computes :func:`minidense.feature_reuse` and writes
only the matrices (no weights) with the run's provenance to a JSON file that the feature-reuse
chapter loads:

    python benchmarks/record_feature_reuse.py --profile cpu --out book/results/feature_reuse_cpu.json
"""

import argparse
import json
from pathlib import Path

import torch

import minidense
from minidense.hardware import default_device
from minidense.history import provenance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="full, cpu or smoke (default: MINIDENSE_PROFILE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="Fashion-MNIST root (default: MINIDENSE_DATA)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    p = minidense.profile(args.profile)
    # provenance of the code that trains: taken now, not after minutes of training
    run = provenance(default_device(), p.name, seed=args.seed, network="minidense.densenet()",
                     num_epochs=p.num_epochs, lr=p.lr, batch_size=p.batch_size, num_train=p.num_train,
                     num_test=p.num_test)
    torch.manual_seed(args.seed)
    net = minidense.densenet()
    train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, resize=p.resize, root=args.data,
                                                         num_train=p.num_train, num_test=p.num_test,
                                                         seed=args.seed)
    history = minidense.train(net, train_iter, test_iter, p.num_epochs, p.lr, **p.train_options())
    matrices = minidense.feature_reuse(net)
    record = {
        "provenance": {**run, "test_acc": history.last["test_acc"]},
        "description": "feature_reuse(net) per dense block: rows are source layers (0 = block input), "
                       "columns target layers (last = transition or classifier); null = no connection",
        "matrices": [[[None if v != v else round(v, 6) for v in row] for row in m.tolist()] for m in matrices],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
