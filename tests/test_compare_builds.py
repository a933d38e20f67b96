"""``compare --vary`` builds the network it names: parameter counts worked out by hand.

The book's network, counted layer by layer (convolutions with bias, BN has a weight and a bias):

* stem: Conv 7x7 from 1 to 64 channels, ``1 * 64 * 49 + 64``, and BN(64), ``2 * 64``;
* conv block reading ``c`` channels and adding ``k``: BN(c) ``2c``, Conv 3x3 ``9 * c * k + k``;
* transition from ``c`` to ``c // 2`` channels: BN(c) ``2c``, Conv 1x1 ``c * (c // 2) + c // 2``;
* head on ``c`` channels: BN(c) ``2c``, Linear ``10c + 10``.
"""

import pytest

from minidense.experiments import FashionMNISTRun
from minidense.grids import grid, parse_vary


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
