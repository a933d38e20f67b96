"""minidense.settings: every setting of a run in one typed object, the flags and keys generated from it,
and the one place a run's key is made."""

import dataclasses
import hashlib
import json

import pytest

from minidense import blocks, settings
from minidense.__main__ import command_parser
from minidense.experiments import FashionMNISTRun
from minidense.options import POOLS, Budget, Levers, Network, _option, fields_of
from minidense.profiles import PROFILES, profile
from minidense.settings import NAMES, Settings

SMOKE = Settings.of_profile(profile("smoke"), Levers(precision="fp32", channels_last=False, keep_freed_memory=True))


def test_the_groups_hold_every_setting_once_in_order():
    assert list(settings.GROUPS) == ["network", "budget", "recipe", "levers"]
    assert list(NAMES) == [name for group in settings.GROUPS.values() for name in fields_of(group)]
    book = ["transition_pool", "growth_rate", "convs_per_block", "num_epochs", "batch_size", "num_train",
            "num_test", "resize", "recipe"]
    assert [name for name in NAMES if name in book] == book
    assert all(field.metadata["help"] for group in settings.GROUPS.values() for field in fields_of(group).values())


def test_the_pools_are_the_layers_pools():
    assert tuple(blocks.POOLS) == POOLS


def test_a_profile_is_a_named_budget():
    smoke = profile("smoke")
    assert isinstance(smoke, Budget) and SMOKE.budget == Budget(num_epochs=1, batch_size=64, num_train=512,
                                                                num_test=256, resize=96, recipe="short")
    assert {p.name for p in PROFILES.values()} == {"full", "cpu", "smoke"}
    assert profile("full").images == (60_000, 10_000) and smoke.images == (512, 256)


def test_a_profiles_settings_start_from_the_books_network_its_recipe_and_undecided_levers():
    smoke = Settings.of_profile(profile("smoke"))
    assert (smoke.network, smoke.recipe, smoke.levers) == (Network(), settings.RECIPES["short"], Levers())
    assert smoke.levers.precision is None  # decided for the machine where the run trains


def test_train_has_a_flag_for_every_setting_with_its_name():
    train = command_parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    assert {"--" + name.replace("_", "-") for name in NAMES} <= flags
    assert {"--epochs", "--pool"} <= flags  # the older spellings stay
    args = train.parse_args(["--epochs", "3", "--pool", "max", "--convs-per-block", "2-2"])
    assert (args.num_epochs, args.transition_pool, args.convs_per_block) == (3, "max", (2, 2))


def test_replace_starts_a_named_recipe_and_changes_single_fields():
    book = SMOKE.replace(recipe="book", lr=0.2, growth_rate=16, resize=48)
    assert book.recipe == settings.RECIPES["book"].replace(lr=0.2)
    assert (book.budget.recipe, book.budget.resize, book.network.growth_rate) == ("book", 48, 16)
    assert SMOKE.replace(bf16=True).levers.precision == "bf16"  # the switch's old name
    with pytest.raises(ValueError, match="unknown setting.*'colour'"):
        SMOKE.replace(colour="red")
    with pytest.raises(ValueError, match="num_train=60,001 is more than the 60,000 images of the split"):
        SMOKE.replace(num_train=60_001)
    with pytest.raises(ValueError, match="growth_rate must be a positive integer, got 0"):
        SMOKE.replace(growth_rate=0)


def test_a_records_texts_read_back_as_the_same_settings():
    chosen = SMOKE.replace(convs_per_block=(2, 3), num_test=None, schedule=None, ema_decay=0.99, precise_bn=2)
    texts = chosen.texts()
    assert (texts["convs_per_block"], texts["num_test"], texts["schedule"]) == ("2-3", "none", "none")
    assert Settings.from_texts(texts) == chosen


def test_the_key_is_the_digest_of_every_setting_and_the_seed_as_records_spell_them():
    implied = {name: field.metadata["implied"] for group in settings.GROUPS.values()
               for name, field in fields_of(group).items() if "implied" in field.metadata}
    texts = {name: text for name, text in SMOKE.texts().items()
             if name not in implied or SMOKE.flat()[name] != implied[name]}  # fields added later, at their default
    texts["bf16"] = "False"  # fp32 spelled as the switch the records hold
    del texts["precision"]
    digest = hashlib.sha256(json.dumps({"seed": 3, **texts}, sort_keys=True).encode()).hexdigest()[:16]
    assert SMOKE.key(3) == digest
    assert len({SMOKE.key(0), SMOKE.key(1), SMOKE.replace(resize=48).key(0), SMOKE.replace(lr=0.01).key(0),
                SMOKE.replace(precision="bf16").key(0), SMOKE.replace(precision="fp16").key(0),
                SMOKE.replace(transition_pool="max").key(0)}) == 7


def test_a_field_added_with_the_value_old_runs_implied_keeps_their_keys(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class WithTask(Network):
        task: str = _option("garment", "what is read from an image", implied="garment")

    before = SMOKE.key(0)
    monkeypatch.setitem(settings.GROUPS, "network", WithTask)
    assert dataclasses.replace(SMOKE, network=WithTask()).key(0) == before  # the implied value: not in the key
    assert dataclasses.replace(SMOKE, network=WithTask(task="rows")).key(0) != before


def test_a_runs_key_holds_every_setting_that_changes_its_result():
    smoke, cpu = FashionMNISTRun("smoke"), FashionMNISTRun("cpu")
    base = smoke.key({}, 0)
    assert base == smoke.key({}, 0)
    others = [smoke.key({}, 1), cpu.key({}, 0), smoke.key({"resize": 48}, 0), smoke.key({"recipe": "book"}, 0),
              smoke.key({"lr": 0.01}, 0), smoke.key({"bf16": not smoke.levers.bf16}, 0)]
    assert len({base, *others}) == len(others) + 1
