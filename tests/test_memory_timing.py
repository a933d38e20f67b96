"""minidense.memory.paired_step_times: training steps timed in both modes, in pairs."""

import pytest
import torch

import minidense
from minidense.memory import paired_step_times


def test_one_time_per_mode_and_pair_and_the_mode_left_as_found():
    net = minidense.cifar_densenet(7, 4)
    net.memory_efficient = True
    steps = paired_step_times(net, torch.randn(2, 3, 8, 8), num_pairs=3)
    assert sorted(steps) == [False, True]
    assert [len(steps[False]), len(steps[True])] == [3, 3]
    assert all(seconds > 0 for times in steps.values() for seconds in times)
    assert net.memory_efficient is True


def test_fewer_than_two_pairs_is_a_clear_error():
    with pytest.raises(ValueError, match="num_pairs must be an integer of at least 2"):
        paired_step_times(minidense.cifar_densenet(7, 4), torch.randn(2, 3, 8, 8), num_pairs=1)
