"""The record of a training run: one row per epoch, plus where and how it was made."""

import dataclasses
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from minidense.files import write_json
from minidense.hardware import device_name
from minidense.options import Levers, fields_of

__all__ = ["History", "provenance", "git_commit", "command_line"]

FIELDS = ("epoch", "train_loss", "train_acc", "test_acc", "examples_per_sec", "seconds")


def _git(*args):
    """``git <args>`` in the library's own folder: its output, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_commit():
    """The commit of the git checkout the library runs from, or None (e.g. an installed wheel)."""
    return _git("rev-parse", "HEAD")


def repository_root():
    """The root of the git checkout the library runs from, or None."""
    root = _git("rev-parse", "--show-toplevel")
    return None if root is None else Path(root)


def _relative_to(root, arg):
    """``arg`` (a path, or ``--flag=path``) written relative to ``root`` if it is an absolute path
    inside it, as written or with its links resolved; anything else unchanged."""
    flag, value = arg.split("=", 1) if arg.startswith("--") and "=" in arg else (None, arg)
    path = Path(value)
    if root is None or not path.is_absolute():
        return arg
    for candidate in (path, Path(os.path.realpath(path))):
        if candidate.is_relative_to(root):
            relative = candidate.relative_to(root).as_posix()
            return relative if flag is None else f"{flag}={relative}"
    return arg


def command_line():
    """The command that is running, as typed: ``python -m minidense train ...`` for the CLI. An
    absolute path inside the library's git checkout is written relative to the checkout's root, so
    that a record does not name the folder the checkout happened to be in; a relative path stays
    as typed (relative to the folder the command ran from, the root for the book's commands)."""
    if not sys.argv or not sys.argv[0]:
        return None
    program = Path(sys.argv[0])
    is_cli = program.name == "__main__.py" and program.parent.name == "minidense"
    root = repository_root()
    return " ".join(["python -m minidense" if is_cli else program.name,
                     *(_relative_to(root, arg) for arg in sys.argv[1:])])


def _fields(options):
    """An option group's fields as a flat dict (their names are unique across the groups)."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options or {})


def provenance(device, profile=None, recipe=None, levers=None, **settings):
    """Where and how a run was made: profile, device and its name, torch, command, git commit, date,
    and every field of the recipe and of the levers (:mod:`minidense.options`), then ``settings``."""
    return {
        "profile": profile,
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "command": command_line(),
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **_fields(recipe),
        **_fields(levers),
        **settings,
    }


@dataclasses.dataclass
class History:
    """Per-epoch records (``epoch, train_loss, train_acc, test_acc, examples_per_sec, seconds``)
    and the provenance of the run."""

    records: list = dataclasses.field(default_factory=list)
    provenance: dict = dataclasses.field(default_factory=dict)

    def append(self, **record):
        missing = [f for f in FIELDS if f not in record]
        if missing:
            raise ValueError(f"an epoch record needs {', '.join(missing)}")
        self.records.append(record)

    @property
    def last(self):
        """The last epoch's record (a dict)."""
        if not self.records:
            raise ValueError("the history is empty: no epoch has finished")
        return self.records[-1]

    @property
    def levers(self):
        """The :class:`minidense.Levers` the run trained and evaluated with, from its provenance: pass them to
        :func:`minidense.training.predict` or :func:`minidense.evaluate_accuracy` to evaluate as it did."""
        known = {name: self.provenance[name] for name in fields_of(Levers) if name in self.provenance}
        # a run recorded before fp16 joined says bf16 True or False, for precision bf16 or fp32
        return Levers(**known, bf16=None if "precision" in known else self.provenance.get("bf16"))

    @property
    def examples_per_sec(self):
        """Training images over the wall seconds of all training passes."""
        seconds = sum(r["seconds"] for r in self.records)
        images = sum(r["examples_per_sec"] * r["seconds"] for r in self.records)
        return images / seconds if seconds else float("nan")

    def summary(self):
        """The d2l-style closing line.

        For example ``loss 0.154, train acc 0.943, test acc 0.880, 5506.9 examples/sec on cuda:0``.
        """
        last = self.last
        return (f"loss {last['train_loss']:.3f}, train acc {last['train_acc']:.3f}, "
                f"test acc {last['test_acc']:.3f}, {self.examples_per_sec:.1f} examples/sec "
                f"on {self.provenance.get('device', '?')}")

    def to_frame(self):
        """The records as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=list(dict.fromkeys([*FIELDS, *self._extra_fields()])))

    def _extra_fields(self):
        return [k for r in self.records for k in r if k not in FIELDS]

    def to_dict(self):
        return {"records": self.records, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data):
        return cls(records=list(data["records"]), provenance=dict(data["provenance"]))

    def save(self, path):
        """Write the history as JSON (creating the folder); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read a history written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text())
            return cls.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a minidense History JSON file ({error})") from error
