"""The option schema: every Recipe and Levers check at its boundary, the recipes' descriptions,
the levers' defaults (decided in one place) and the command line's reading of each field."""

import dataclasses
import math
import re

import pytest
import torch

from minidense import options
from minidense.options import RECIPES, Levers, Recipe, fields_of, parse_field, recipe


@pytest.mark.parametrize("changes", [
    dict(lr=1e-9), dict(momentum=0), dict(momentum=0.9, nesterov=True), dict(weight_decay=0),
    dict(label_smoothing=0), dict(label_smoothing=0.99), dict(translate=0), dict(translate=8), dict(precise_bn=0),
    dict(precise_bn=1, ema_decay=1e-6), dict(precise_bn=1, ema_decay=0.999999), dict(schedule="step"),
    dict(schedule="cosine"), dict(schedule="onecycle"), dict(schedule=None), dict(flip=True), dict(tta=True),
])
def test_values_at_the_edges_of_what_is_allowed_are_accepted(changes):
    assert dataclasses.asdict(Recipe(**changes)).items() >= changes.items()


@pytest.mark.parametrize("changes, message", [
    (dict(lr=0), "lr must be in (0, inf), got 0"),
    (dict(lr=-0.1), "lr must be in (0, inf), got -0.1"),
    (dict(lr=math.inf), "lr must be a finite number, got inf"),
    (dict(lr=math.nan), "lr must be a finite number, got nan"),
    (dict(lr=True), "lr must be a finite number, got True"),
    (dict(lr="0.1"), "lr must be a finite number, got '0.1'"),
    (dict(momentum=-0.5), "momentum must be in [0, inf), got -0.5"),
    (dict(weight_decay=-1e-4), "weight_decay must be in [0, inf), got -0.0001"),
    (dict(label_smoothing=-0.1), "label_smoothing must be in [0, inf), got -0.1"),
    (dict(label_smoothing=1), "label_smoothing must be in [0, 1), got 1: at 1 the target says nothing"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(schedule="linear"), "schedule must be one of None, step, cosine, onecycle, got 'linear'"),
    (dict(precise_bn=-1), "precise_bn must be an integer >= 0, got -1"),
    (dict(precise_bn=2.0), "precise_bn must be an integer >= 0, got 2.0"),
    (dict(precise_bn=True), "precise_bn must be an integer >= 0, got True"),
    (dict(translate=-2), "translate must be an integer >= 0, got -2"),
    (dict(translate=9), "translate must be at most 8 pixels of the 28x28 image, got 9"),
    (dict(ema_decay=0.9), "ema_decay needs precise_bn > 0"),
    (dict(ema_decay=0, precise_bn=1), "ema_decay must be in (0, 1), got 0"),
    (dict(ema_decay=1, precise_bn=1), "ema_decay must be in (0, 1), got 1"),
    (dict(ema_decay=1.5, precise_bn=1), "ema_decay must be in (0, 1), got 1.5"),
    (dict(flip=1), "flip must be True or False, got 1"),
    (dict(tta="yes"), "tta must be True or False, got 'yes'"),
    (dict(nesterov=1, momentum=0.9), "nesterov must be True or False, got 1"),
])
def test_an_invalid_recipe_is_refused_in_the_users_terms(changes, message):
    with pytest.raises(ValueError) as error:
        Recipe(**changes)
    assert message in str(error.value)


def test_replace_checks_the_new_recipe_and_recipes_are_frozen():
    short = RECIPES["short"]
    assert short.replace(lr=0.2).lr == 0.2 and short.lr == 0.05
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        short.replace(momentum=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        short.lr = 1


def test_the_three_named_recipes():
    assert RECIPES["d2l"] == Recipe() == Recipe(lr=0.1, momentum=0, nesterov=False, weight_decay=0, schedule=None,
                                                precise_bn=0, label_smoothing=0, translate=0, flip=False,
                                                ema_decay=None, tta=False)
    assert RECIPES["short"] == Recipe(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                                      precise_bn=20)
    assert RECIPES["book"] == RECIPES["short"].replace(lr=0.1, label_smoothing=0.1, translate=2, flip=True,
                                                       ema_decay=0.998, tta=True)
    assert recipe() is recipe(None) is RECIPES["d2l"] and recipe("book") is RECIPES["book"]
    mine = Recipe(lr=0.3)
    assert recipe(mine) is mine
    with pytest.raises(ValueError, match="unknown recipe 'fast'; choose one of d2l, short, book"):
        recipe("fast")


@pytest.mark.parametrize("recipe_, text", [
    (Recipe(), "d2l (constant lr 0.1, plain SGD)"),
    (Recipe(lr=0.05), "d2l (constant lr 0.05, plain SGD)"),
    (RECIPES["short"], "onecycle lr 0.05, Nesterov momentum 0.9, weight decay 0.0005, BN re-estimated over 20 batches"),
    (RECIPES["book"], "onecycle lr 0.1, Nesterov momentum 0.9, weight decay 0.0005, BN re-estimated over 20 batches, "
                      "label smoothing 0.1, augmentation (shifts up to 2 px, flips), "
                      "EMA of the weights (decay warmed up to 0.998), flip TTA"),
    (Recipe(momentum=0.5), "constant lr 0.1, momentum 0.5"),
    (Recipe(schedule="step", translate=3), "step lr 0.1, augmentation (shifts up to 3 px)"),
    (Recipe(flip=True), "constant lr 0.1, augmentation (flips)"),
    (Recipe(tta=True), "constant lr 0.1, flip TTA"),
])
def test_a_recipe_describes_itself(recipe_, text):
    assert str(recipe_) == text


def test_augments_is_true_with_shifts_or_flips():
    assert not Recipe().augments
    assert Recipe(translate=1).augments and Recipe(flip=True).augments
    assert Recipe(tta=True).augments is False  # test-time flips are not training augmentation


def test_interval_checks_include_or_exclude_their_ends_as_asked():
    check = options._check_number
    check("x", 1, 0, 1, high_open=False)  # [0, 1] holds 1
    check("x", 0, 0, 1)  # [0, 1) holds 0
    for value, kwargs, interval in [(1, dict(), "[0, 1)"), (0, dict(low_open=True), "(0, 1)"),
                                    (1.5, dict(high_open=False), "[0, 1]"), (-1, dict(), "[0, 1)")]:
        with pytest.raises(ValueError, match=re.escape(f"x must be in {interval}, got {value!r}")):
            check("x", value, 0, 1, **kwargs)


def test_an_evaluation_batch_of_one_is_allowed():
    assert Levers(eval_batch_size=1).eval_batch_size == 1


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (True, TypeError), (2.5, TypeError),
                                          ("64", TypeError)])
def test_eval_batch_size_must_be_a_positive_integer(value, error):
    with pytest.raises(error, match=f"eval_batch_size must be a positive integer or None, got {value!r}"):
        Levers(eval_batch_size=value)


def test_memory_format_follows_channels_last():
    assert Levers(channels_last=True).memory_format == torch.channels_last
    assert Levers(channels_last=False).memory_format == torch.contiguous_format
    assert Levers().memory_format == torch.contiguous_format  # undecided: the plain format


def test_fields_are_listed_in_their_order():
    assert list(fields_of(Recipe)) == ["lr", "momentum", "nesterov", "weight_decay", "schedule", "precise_bn",
                                       "label_smoothing", "translate", "flip", "ema_decay", "tta"]
    assert list(fields_of(Levers)) == ["precision", "channels_last", "compile", "eval_batch_size", "inplace_relu",
                                       "host_sync", "keep_freed_memory"]
    assert all(f.metadata["help"] for cls in (Recipe, Levers) for f in fields_of(cls).values())
    choices = fields_of(Recipe)["schedule"].metadata["choices"]
    assert choices == options.SCHEDULES == (None, "step", "cosine", "onecycle")


@pytest.mark.parametrize("cls, name, text, value", [
    (Recipe, "lr", "0.5", 0.5), (Recipe, "precise_bn", "20", 20), (Recipe, "translate", "0", 0),
    (Recipe, "nesterov", "true", True), (Recipe, "flip", "False", False), (Recipe, "tta", "TRUE", True),
    (Recipe, "schedule", "none", None), (Recipe, "schedule", "None", None), (Recipe, "schedule", "cosine", "cosine"),
    (Recipe, "ema_decay", "none", None), (Recipe, "ema_decay", "None", None), (Recipe, "ema_decay", "0.9", 0.9),
    (Levers, "precision", "none", None), (Levers, "precision", "fp16", "fp16"), (Levers, "eval_batch_size", "512", 512),
    (Levers, "eval_batch_size", "NONE", None),
])
def test_parse_field_reads_each_kind_of_value(cls, name, text, value):
    parsed = parse_field(fields_of(cls)[name], text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("cls, name, text, message", [
    (Recipe, "schedule", "linear", "expected one of none, step, cosine, onecycle, got 'linear'"),
    (Recipe, "schedule", "Step", "expected one of none, step, cosine, onecycle, got 'Step'"),
    (Recipe, "nesterov", "yes", "expected true or false, got 'yes'"),
    (Recipe, "nesterov", "none", "expected true or false, got 'none'"),  # not optional
    (Recipe, "precise_bn", "2.5", "expected an integer, got '2.5'"),
    (Recipe, "lr", "fast", "expected a number, got 'fast'"),
    (Levers, "eval_batch_size", "many", "expected an integer, got 'many'"),
])
def test_parse_field_refuses_what_does_not_parse(cls, name, text, message):
    with pytest.raises(ValueError) as error:
        parse_field(fields_of(cls)[name], text)
    assert str(error.value) == message
