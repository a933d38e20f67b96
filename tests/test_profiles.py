"""Profiles: the three budgets, how the name is chosen, and the error for an unknown one."""

import dataclasses

import pytest
import torch

import minidense
from minidense.profiles import PROFILES


def test_the_three_profiles_of_the_design():
    full, cpu, smoke = (minidense.profile(n) for n in ("full", "cpu", "smoke"))
    assert (full.num_epochs, full.batch_size, full.lr, full.num_train, full.num_test, full.resize) == \
        (10, 256, 0.1, None, None, 96)
    assert (cpu.num_epochs, cpu.batch_size, cpu.num_train, cpu.num_test, cpu.resize) == (2, 128, 10_000, 2_000, 96)
    assert (smoke.num_epochs, smoke.batch_size, smoke.num_train, smoke.num_test) == (1, 64, 512, 256)


def test_full_keeps_the_d2l_recipe_and_short_budgets_anneal():
    full = minidense.recipe(minidense.profile("full").recipe)
    assert full == minidense.Recipe() and full.schedule is None and full.precise_bn == 0
    for name in ("cpu", "smoke"):
        recipe = minidense.recipe(minidense.profile(name).recipe)
        assert recipe.schedule == "onecycle" and recipe.precise_bn > 0
        assert minidense.profile(name).lr == recipe.lr == 0.05


def test_name_from_argument_then_environment_then_device(monkeypatch):
    monkeypatch.setenv("MINIDENSE_PROFILE", "smoke")
    assert minidense.profile().name == "smoke"
    assert minidense.profile("cpu").name == "cpu"
    monkeypatch.delenv("MINIDENSE_PROFILE")
    assert minidense.profile().name == ("full" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown profile 'fast'; choose one of full, cpu, smoke"):
        minidense.profile("fast")
    monkeypatch.setenv("MINIDENSE_PROFILE", "gpu")
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        minidense.profile()


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["cpu"].num_epochs = 100


def test_printing_a_profile_says_its_budget():
    text = str(minidense.profile("cpu"))
    assert "'cpu'" in text and "2 epochs" in text and "10,000 train / 2,000 test" in text
