"""The learning rate and momentum of every step, read from the optimiser while ``train`` runs.

A global optimiser pre-hook (``torch.optim.optimizer.register_optimizer_step_pre_hook``) records
``lr`` and ``momentum`` of the parameter group just before each SGD step: what that step uses.
The training is 2 epochs of 20 batches, T = 40 steps, peak lr 0.1, momentum 0.9; every value is
checked against the formula written out here.
"""

import math

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import minidense
from minidense.options import Levers, Recipe

LR, MOMENTUM, EPOCHS, BATCHES = 0.1, 0.9, 2, 20
T = EPOCHS * BATCHES


def trace(schedule):
    """``(lrs, momenta)``: one value per training step, in order."""
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.rand(4, 1, 4, 4, generator=generator), torch.randint(0, 10, (4,), generator=generator))
               for _ in range(BATCHES)]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    lrs, momenta = [], []

    def record(optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["momentum"])

    handle = register_optimizer_step_pre_hook(record)
    try:
        minidense.train(net, batches, batches[:2], EPOCHS, device="cpu", recipe=Recipe(
            lr=LR, momentum=MOMENTUM, schedule=schedule), levers=Levers(bf16=False, channels_last=False),
            verbose=False, progress=False)
    finally:
        handle.remove()
    assert len(lrs) == T
    return lrs, momenta


@pytest.mark.parametrize("schedule", [None, "step", "cosine", "onecycle"])
def test_momentum_stays_what_the_recipe_says(schedule):
    _, momenta = trace(schedule)
    assert momenta == [MOMENTUM] * T  # one-cycle must not cycle it (OneCycleLR would, by default)


def test_no_schedule_keeps_the_lr_constant():
    lrs, _ = trace(None)
    assert lrs == [LR] * T


def test_step_divides_by_10_at_half_and_by_100_at_three_quarters():
    lrs, _ = trace("step")
    # steps 0..19 at lr, 20..29 (from 50% of the steps) at lr / 10, 30..39 (from 75%) at lr / 100
    assert lrs[:20] == [LR] * 20
    assert lrs[20:30] == pytest.approx([LR / 10] * 10, rel=1e-12)
    assert lrs[30:] == pytest.approx([LR / 100] * 10, rel=1e-12)


def test_cosine_is_half_the_lr_half_way():
    lrs, _ = trace("cosine")
    # lr_i = lr (1 + cos(pi i / T)) / 2, from lr at step 0 towards 0 at step T
    assert lrs == pytest.approx([LR * (1 + math.cos(math.pi * i / T)) / 2 for i in range(T)], rel=1e-9, abs=1e-15)
    assert lrs[0] == LR and lrs[T // 2] == pytest.approx(LR / 2, rel=1e-12)


def test_onecycle_warms_up_for_30_percent_then_anneals():
    lrs, _ = trace("onecycle")
    # OneCycleLR with its defaults: start at lr / 25, rise along a half cosine to lr at step
    # 0.3 T - 1 = 11 (the 12th of 40 steps), then fall along a half cosine to lr / 25 / 10^4 at the last step.
    start, peak, end = LR / 25, 0.3 * T - 1, LR / 25 / 1e4

    def half_cosine(a, b, fraction):
        return b + (a - b) * (1 + math.cos(math.pi * fraction)) / 2

    expected = [half_cosine(start, LR, i / peak) if i <= peak else half_cosine(LR, end, (i - peak) / (T - 1 - peak))
                for i in range(T)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert max(range(T), key=lrs.__getitem__) == 11 and lrs[11] == pytest.approx(LR, rel=1e-12)
    assert lrs[0] == pytest.approx(LR / 25) and lrs[-1] == pytest.approx(LR / 25 / 1e4)
