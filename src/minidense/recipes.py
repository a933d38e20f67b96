"""Training recipes side by side on one budget: d2l's constant learning rate against the short-budget fixes.

On a short budget (the ``cpu`` profile: 2 epochs on 10,000 images) d2l's recipe leaves BN running
averages that lag the network and noisy last weights. Re-estimating the BN statistics ("precise BN")
and a one-cycle schedule fix that. :data:`SHORT_BUDGET_RECIPES` lists the variants the training
chapter compares; record them with::

    python -m minidense.recipes --profile cpu --out book/results/short-budget-recipes.json
"""

import argparse
import sys
from pathlib import Path

import torch

from minidense.data import load_fashion_mnist
from minidense.history import save_histories
from minidense.models import densenet
from minidense.profiles import PROFILES, profile
from minidense.training import train

__all__ = ["SHORT_BUDGET_RECIPES", "compare_recipes"]


# label -> keyword arguments of :func:`minidense.train` (``lr`` included). The ``cpu`` profile's own
# recipe adds Nesterov momentum and weight decay to the last one (``python -m minidense train`` records it).
SHORT_BUDGET_RECIPES = {
    "d2l: constant lr 0.1": dict(lr=0.1),
    "d2l + precise BN": dict(lr=0.1, precise_bn=20),
    "d2l + one-cycle": dict(lr=0.1, schedule="onecycle"),
    "d2l + precise BN + one-cycle": dict(lr=0.1, schedule="onecycle", precise_bn=20),
}


def compare_recipes(recipes, num_epochs, batch_size, num_train=None, num_test=None, resize=96, root=None,
                    device=None, seed=0, profile=None):
    """Train a fresh book DenseNet with every recipe on the same data, from the same initial weights.

    Args:
        recipes: ``{label: options}``, each ``options`` the keyword arguments of
            :func:`minidense.train` including ``lr`` (see :data:`SHORT_BUDGET_RECIPES`).
        num_epochs, batch_size, num_train, num_test, resize: the budget, shared by every recipe.
        root: the data folder (default ``MINIDENSE_DATA``, else ``~/.cache/minidense``).
        device: where to train; default CUDA when available, else the CPU.
        seed: seeds the initial weights (the same for every recipe) and the data order.
        profile: name of the profile the budget came from, for the record.

    Returns:
        ``{label: History}``, in the order of ``recipes``; each history's provenance names its recipe.
    """
    if not recipes:
        raise ValueError("recipes is empty: pass {label: options of minidense.train}")
    for label, options in recipes.items():
        if "lr" not in options:
            raise ValueError(f"recipe {label!r} needs an 'lr' (the learning rate, or the one-cycle peak)")
    train_iter, test_iter = load_fashion_mnist(batch_size, resize=resize, root=root, device=device,
                                               num_train=num_train, num_test=num_test, seed=seed)
    runs = {}
    for label, options in recipes.items():
        torch.manual_seed(seed)
        net = densenet()
        history = train(net, train_iter, test_iter, num_epochs, device=device, plot=False, progress=False,
                        verbose=False, profile=profile, **options)
        history.provenance.update(recipe=label, seed=seed)
        print(f"{label}: {history.summary()}", flush=True)
        runs[label] = history
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidense.recipes",
                                     description="Train the book's DenseNet with every recipe of "
                                                 "SHORT_BUDGET_RECIPES on one profile's budget.")
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu", help="the budget (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the data order")
    parser.add_argument("--data", type=Path, help="data root (default: MINIDENSE_DATA, else ~/.cache/minidense)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the runs")
    args = parser.parse_args(argv)
    p = profile(args.profile)
    print(p)
    runs = compare_recipes(SHORT_BUDGET_RECIPES, p.num_epochs, p.batch_size, p.num_train, p.num_test,
                           p.resize, root=args.data, device=args.device, seed=args.seed, profile=p.name)
    path = save_histories(args.out, runs, profile=p.name, seed=args.seed, num_epochs=p.num_epochs,
                          batch_size=p.batch_size, num_train=p.num_train, num_test=p.num_test)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
