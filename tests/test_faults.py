"""Faults: two writers, kill -9, unwritable paths, changed settings on resume, bad input found before
any training. Each test injects the fault and finishes in bounded time."""


import pytest
import torch
from torch import nn

import minidense
from conftest import tiny_densenet
from minidense.options import Levers, Recipe

EXACT = dict(levers=Levers(bf16=False, channels_last=False), verbose=False, progress=False)


def test_a_nan_loss_stops_training_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    with torch.no_grad():
        net[1].weight.fill_(float("nan"))
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(FloatingPointError, match="the training loss became nan in epoch 1"):
        minidense.train(net, *tiny_data, 2, 0.1, checkpoint=checkpoint, **EXACT)
    assert not checkpoint.exists()


@pytest.mark.parametrize("train_iter, message", [
    ((batch for batch in []), "train_iter must have a length"),
    ([], "train_iter has no batches"),
])
def test_iterables_without_length_or_batches_are_clear_errors(train_iter, message):
    with pytest.raises(ValueError, match=message):
        minidense.train(tiny_densenet(), train_iter, [], 1, 0.1, "cpu", **EXACT)


def test_evaluating_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="no batches"):
        minidense.evaluate_accuracy(tiny_densenet(), [], "cpu")


def test_augmentation_needs_the_librarys_iterator():
    batches = [(torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="must be a minidense.data.FashionMNISTBatches"):
        minidense.train(tiny_densenet(), batches, batches, 1, recipe=Recipe(translate=2), device="cpu", **EXACT)


@pytest.mark.parametrize("X, message", [
    (torch.zeros(2, 1, 32, 32, dtype=torch.float64), "expects torch.float32 input, the dtype of its weights"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "expects floating-point images"),
])
def test_input_of_another_dtype_is_an_error_in_the_librarys_terms(X, message):
    with pytest.raises(ValueError, match=message):
        tiny_densenet()(X)


def test_a_very_deep_network_builds_at_once():
    net = minidense.densenet(growth_rate=1, convs_per_block=(1,) * 18)  # 17 transitions: 2**19 pixels
    assert net.min_size == 524_285  # 4 * 2**17 for the stem and the transitions, less the padding's slack






