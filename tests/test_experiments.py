"""minidense.experiments: the runner (paired seeds, reproducible runs, bad variants) and the networks
compare --vary builds, their parameters counted by hand.
"""

import pytest
import torch

from minidense.experiments import FashionMNISTRun, compare, epochs_long
from minidense.grids import grid, parse_vary

# The experiment runner: paired seeds, resuming, the summary's maths, and bad ``--vary`` specs.

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


# ``compare --vary`` builds the network it names: parameter counts worked out by hand.
#
# The book's network, counted layer by layer (convolutions with bias, BN has a weight and a bias):
#
# * stem: Conv 7x7 from 1 to 64 channels, ``1 * 64 * 49 + 64``, and BN(64), ``2 * 64``;
# * conv block reading ``c`` channels and adding ``k``: BN(c) ``2c``, Conv 3x3 ``9 * c * k + k``;
# * transition from ``c`` to ``c // 2`` channels: BN(c) ``2c``, Conv 1x1 ``c * (c // 2) + c // 2``;
# * head on ``c`` channels: BN(c) ``2c``, Linear ``10c + 10``.

def book_densenet_parameters(growth_rate, convs_per_block):
    """The count of the rules above (the formula, written out once)."""
    c = 64
    total = 1 * 64 * 49 + 64 + 2 * 64
    for i, num_convs in enumerate(convs_per_block):
        for _ in range(num_convs):
            total += 2 * c + 9 * c * growth_rate + growth_rate
            c += growth_rate
        if i + 1 < len(convs_per_block):
            total += 2 * c + c * (c // 2) + c // 2
            c //= 2
    return total + 2 * c + 10 * c + 10


def test_the_formula_gives_the_books_758226_parameters():
    assert book_densenet_parameters(32, (4, 4, 4, 4)) == 758_226  # DESIGN.md's count of the default network


def test_the_tiny_network_counted_by_hand():
    # growth rate 8, two blocks of two convs: 64 -> 72 -> 80 channels, transition to 40, then 48 -> 56
    by_hand = (64 * 49 + 64 + 128            # stem: 3,328
               + 128 + 9 * 64 * 8 + 8         # conv block on 64 channels: 4,744
               + 144 + 9 * 72 * 8 + 8         # on 72: 5,336
               + 160 + 80 * 40 + 40           # transition 80 -> 40: 3,400
               + 80 + 9 * 40 * 8 + 8          # on 40: 2,968
               + 96 + 9 * 48 * 8 + 8          # on 48: 3,560
               + 112 + 56 * 10 + 10)          # head on 56 channels: 682
    assert by_hand == 24_018 == book_densenet_parameters(8, (2, 2))


def count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("spec", ["growth_rate=8,16", "convs_per_block=2-2,3-1-2"])
def test_each_varied_network_has_the_count_of_its_settings(spec):
    run = FashionMNISTRun("smoke", device="cpu")
    variants = grid(**parse_vary([spec]))
    counts = {}
    for name, settings in variants.items():
        settings = {**settings, "transition_pool": "max"}
        full = run.resolve(settings)
        counts[name] = count(run.build(settings, seed=0))
        assert counts[name] == book_densenet_parameters(full.network.growth_rate, full.network.convs_per_block), name
    assert len(set(counts.values())) == len(counts), f"the variants built the same network: {counts}"


def test_the_counts_of_growth_rate_8_and_16_by_hand():
    run = FashionMNISTRun("smoke", device="cpu")
    block = dict(convs_per_block=(2, 2))
    assert count(run.build({"growth_rate": 8, **block}, 0)) == 24_018
    # k = 16: 64 -> 80 -> 96, transition to 48, then 64 -> 80
    assert count(run.build({"growth_rate": 16, **block}, 0)) == (
        3_328 + (128 + 9 * 64 * 16 + 16) + (160 + 9 * 80 * 16 + 16) + (192 + 96 * 48 + 48)
        + (96 + 9 * 48 * 16 + 16) + (128 + 9 * 64 * 16 + 16) + (160 + 80 * 10 + 10)) == 46_586
