"""Record what a trained network shows, without its weights: the feature-reuse matrices (the paper's
Figure 5), the confusion counts on the test set and the indices of the test images it gets wrong.

Either trains ``minidense.densenet()`` under a profile, or reads the weights of a finished run from its
checkpoint (``python -m minidense train ... --checkpoint FILE``), and writes a small JSON file with the
run's provenance that the chapters load::

    python benchmarks/record_trained_network.py --profile cpu --out book/results/feature_reuse_cpu.json
    python benchmarks/record_trained_network.py --checkpoint runs/full.pt --out book/results/trained-full.json
"""

import argparse

import torch

import minidense
from minidense.files import write_json
from minidense.hardware import default_device
from minidense.history import History, provenance
from minidense.training import confusion_counts, predict


def _rounded(matrices):
    return [[[None if v != v else round(v, 6) for v in row] for row in m.tolist()] for m in matrices]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="full, cpu or smoke (default: MINIDENSE_PROFILE)")
    parser.add_argument("--checkpoint", help="the checkpoint of a finished `python -m minidense train` run: "
                        "its weights are recorded instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="Fashion-MNIST root (default: MINIDENSE_DATA)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    device = default_device()
    net = minidense.densenet()
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        history = History.from_dict(state["history"])
        if history.records[-1]["epoch"] != history.provenance["num_epochs"]:
            raise SystemExit(f"{args.checkpoint} holds an unfinished run: epoch {history.records[-1]['epoch']} "
                             f"of {history.provenance['num_epochs']}")
        run = {**history.provenance, "recorded_from": f"the checkpoint of that run ({args.checkpoint}), "
                                                      f"after epoch {history.records[-1]['epoch']}"}
        p = minidense.profile(history.provenance["profile"])
    else:
        p = minidense.profile(args.profile)
        # provenance of the code that trains: taken now, not after minutes of training
        run = provenance(device, p.name, recipe=minidense.recipe(p.recipe), seed=args.seed,
                         network="minidense.densenet()", num_epochs=p.num_epochs, batch_size=p.batch_size,
                         num_train=p.num_train, num_test=p.num_test)
        torch.manual_seed(args.seed)
        net = minidense.densenet()
        train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, resize=p.resize, root=args.data,
                                                             num_train=p.num_train, num_test=p.num_test,
                                                             seed=args.seed)
        history = minidense.train(net, train_iter, test_iter, p.num_epochs, recipe=p.recipe)
    _, test_iter = minidense.load_fashion_mnist(p.batch_size, resize=p.resize, root=args.data, device=device,
                                                num_train=p.num_train, num_test=p.num_test)
    levers = history.levers  # evaluate as the run did
    y_true, y_pred = predict(net.to(device, memory_format=levers.memory_format), test_iter, levers=levers)
    wrong = torch.nonzero(y_true != y_pred).flatten()
    record = {
        "provenance": {**run, "test_acc": history.last["test_acc"], "recorded_with": " ".join(
            ["python benchmarks/record_trained_network.py", *(argv or __import__("sys").argv[1:])])},
        "description": "matrices: feature_reuse(net) per dense block, rows are source layers (0 = block input), "
                       "columns target layers (last = transition or classifier), null = no connection; "
                       "confusion: confusion_counts on the test set in file order, [true][predicted]; "
                       "mistakes: test-set positions the network gets wrong, with their predicted classes",
        "matrices": _rounded(minidense.feature_reuse(net)),
        "confusion": confusion_counts(y_true, y_pred).tolist(),
        "mistakes": {"index": wrong.tolist(), "predicted": y_pred[wrong].tolist()},
        "test_acc_recomputed": (y_true == y_pred).float().mean().item(),
    }
    print(f"wrote {write_json(args.out, record)}")


if __name__ == "__main__":
    main()
