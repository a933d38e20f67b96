"""The experiment runner: paired seeds, resuming, the summary's maths, and bad ``--vary`` specs."""


import pytest
import torch

from minidense.experiments import FashionMNISTRun, compare, epochs_long
from minidense.grids import grid

TINY = dict(growth_rate=8, convs_per_block=(2, 2), resize=32, num_train=256, num_test=256, batch_size=64,
            num_epochs=1, precise_bn=2)


class Recording(FashionMNISTRun):
    """The default runner, remembering each run's initial weights and data order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights, self.orders = {}, {}

    def __call__(self, settings, seed):
        net = self.build(settings, seed)
        train_iter, _ = self.data(settings, seed)
        key = (settings["transition_pool"], seed)
        self.weights[key] = {k: v.clone() for k, v in net.state_dict().items()}
        self.orders[key] = [train_iter.order(epoch) for epoch in range(2)]
        return super().__call__(settings, seed)


def test_paired_seeds_give_identical_weights_and_data_order(data_root, tmp_path):
    run = Recording("smoke", device="cpu", root=data_root)
    variants = grid(transition_pool=["avg", "max"])
    for settings in variants.values():
        settings.update(TINY)
    table = compare(variants, seeds=(0, 1), run_one=run, out=tmp_path, verbose=False)

    assert len(table) == 4 and set(table["transition_pool"]) == {"avg", "max"}
    for seed in (0, 1):  # same seed: the same weights and order, whatever the pooling
        torch.testing.assert_close(run.weights[("avg", seed)], run.weights[("max", seed)], rtol=0, atol=0)
        for order_avg, order_max in zip(run.orders[("avg", seed)], run.orders[("max", seed)]):
            assert torch.equal(order_avg, order_max)
    # another seed: other weights and another order
    first_conv = "stem.0.weight"
    assert not torch.equal(run.weights[("avg", 0)][first_conv], run.weights[("avg", 1)][first_conv])
    assert not torch.equal(run.orders[("avg", 0)][0], run.orders[("avg", 1)][0])
    # the network really was the tiny one: 2 + 2 convs of growth rate 8
    assert table["num_params"].nunique() == 1
    assert table["num_params"].iloc[0] == sum(v.numel() for k, v in run.weights[("avg", 0)].items()
                                              if "running" not in k and "num_batches" not in k)
    curves = epochs_long(table)
    assert list(curves["epoch"]) == [1, 1, 1, 1]
    assert curves["test_acc"].between(0, 1).all()


def test_paired_training_is_reproducible(data_root):
    """The same (variant, seed) trained twice gives the same history on the CPU."""
    run = FashionMNISTRun("smoke", device="cpu", root=data_root)
    settings = {**TINY, "transition_pool": "max"}
    first, second = run(settings, 3), run(settings, 3)
    for a, b in zip(first["epochs"], second["epochs"]):
        assert (a["train_loss"], a["test_acc"]) == (b["train_loss"], b["test_acc"])


def test_compare_rejects_bad_variants_and_seeds():
    def run_one(settings, seed):
        return {"epochs": []}

    with pytest.raises(ValueError, match="non-empty dict"):
        compare({}, run_one=run_one)
    with pytest.raises(ValueError, match="seeds must be distinct integers"):
        compare(grid(width=[1]), seeds=(0, 0), run_one=run_one)
    with pytest.raises(ValueError, match="unknown setting"):
        FashionMNISTRun("smoke").check({"colour": "red"})


