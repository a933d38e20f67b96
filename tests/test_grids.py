"""minidense.grids: --vary and --set specs read, and every combination of their values."""

import pytest

from minidense.grids import grid, parse_vary


def test_grid_names_every_combination_in_order():
    variants = grid(transition_pool=["avg", "max"], convs_per_block=[(2, 2), (4, 4)])
    assert list(variants) == ["transition_pool=avg convs_per_block=2-2", "transition_pool=avg convs_per_block=4-4",
                              "transition_pool=max convs_per_block=2-2", "transition_pool=max convs_per_block=4-4"]
    assert variants["transition_pool=max convs_per_block=2-2"] == {"transition_pool": "max",
                                                                   "convs_per_block": (2, 2)}


def test_parse_vary_reads_each_kind_of_value():
    axes = parse_vary(["transition_pool=avg,max", "growth_rate=16, 32", "convs_per_block=2-2,4-4-4",
                       "schedule=none,onecycle", "lr=0.1", "nesterov=true"])
    assert axes == {"transition_pool": ["avg", "max"], "growth_rate": [16, 32],
                    "convs_per_block": [(2, 2), (4, 4, 4)], "schedule": [None, "onecycle"], "lr": [0.1],
                    "nesterov": [True]}


@pytest.mark.parametrize("values", ["avg", [], 5])
def test_grid_needs_a_non_empty_list_of_values_for_each_setting(values):
    with pytest.raises(ValueError, match="grid: transition_pool needs a non-empty list of values"):
        grid(transition_pool=values)
