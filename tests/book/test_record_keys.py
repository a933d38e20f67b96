"""The recorded runs under book/results/ keep their keys, and rerunning a recorded comparison trains nothing.

A run's key is a digest of its settings and seed (:meth:`minidense.settings.Settings.key`); a record
holds both, and ``compare`` skips a run whose key is recorded. So a change of the schema (a field
renamed, added, or moved to another group) must leave every recorded key as it was: otherwise the
next ``compare`` would train the book's recorded runs again. :mod:`minidense.settings` says how a new
field keeps the old keys.
"""

import json
import shlex
import shutil

import pandas as pd
import pytest

from conftest import ROOT
from minidense import compare, grids
from minidense.__main__ import command_parser
from minidense.experiments import FashionMNISTRun
from minidense.settings import Settings

RESULTS = ROOT / "book" / "results"
RECORDS = sorted(RESULTS.glob("*/runs/*.json"))


def settings_of(record):
    return Settings.from_texts(json.loads(record["settings"]))


@pytest.mark.parametrize("path", RECORDS, ids=lambda path: f"{path.parent.parent.name}/{path.stem}")
def test_every_record_has_the_key_of_its_settings_and_seed(path):
    record = json.loads(path.read_text())
    assert settings_of(record).key(record["seed"]) == record["key"] == path.stem


def test_every_results_csv_row_with_a_key_has_the_key_of_its_settings():
    checked = 0
    for results in sorted(RESULTS.glob("*/results.csv")):
        table = pd.read_csv(results)
        for row in table[table["key"].notna()].to_dict("records") if "key" in table.columns else ():
            assert settings_of(row).key(int(row["seed"])) == row["key"], (results, row["variant"], row["seed"])
            checked += 1
    assert checked >= len(RECORDS)  # every record is a row of its folder's results.csv


class NoTraining(FashionMNISTRun):
    """The book's runner on the recorded runs' levers, failing the test if it is asked to train."""

    def __init__(self, profile, levers):
        super().__init__(profile, device="cpu")
        self.levers = levers  # as the recording machine resolved them

    def __call__(self, settings, seed):
        raise AssertionError(f"compare would train {settings} with seed {seed} again: its key changed")


def recorded_commands():
    """``{(folder, command): levers}`` of every recorded comparison (one set of levers per command)."""
    commands = {}
    for path in RECORDS:
        record = json.loads(path.read_text())
        levers = commands.setdefault((path.parent.parent, record["command"]), settings_of(record).levers)
        assert levers == settings_of(record).levers, f"{path}: the command's runs used different levers"
    return commands


COMMANDS = recorded_commands()


@pytest.mark.parametrize("folder, command", COMMANDS, ids=lambda value: getattr(value, "name", None))
def test_rerunning_a_recorded_comparison_trains_nothing(folder, command, tmp_path):
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "minidense", "compare"], command
    args = command_parser().parse_args(argv[3:])
    out = tmp_path / folder.name
    shutil.copytree(folder, out)
    table = compare(grids.variants(args.vary, args.set), seeds=range(args.seeds), profile=args.profile, out=out,
                    run_one=NoTraining(args.profile, COMMANDS[folder, command]), verbose=False)
    assert len(table) == len(grids.variants(args.vary, args.set)) * args.seeds
