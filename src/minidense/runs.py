"""The runs recorded in a comparison's folder: one JSON record per finished run, and ``results.csv``.

Each finished run is one file, ``<folder>/runs/<key>.json``, written atomically (a kill mid-write
leaves no half record), so a run is recorded once it is, and a rerun with the same key is skipped.
``results.csv`` is rebuilt from every record under an exclusive lock on the folder, so two
comparisons writing into one folder keep every row; its order depends on the records alone (seed,
variant, key), not on the files' times, which a clone resets.
"""

import contextlib
import json
import os
from pathlib import Path

from minidense.files import atomic_write, write_json

__all__ = ["RunRecords", "RECORDS"]

RECORDS = "runs"  # the folder of an --out holding one JSON record per finished run


class RunRecords:
    """The records under ``folder`` (made, and checked writable, now: before any training)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        (self.folder / RECORDS).mkdir(parents=True, exist_ok=True)
        probe = self.folder / RECORDS / f".writable.{os.getpid()}"
        try:
            probe.touch()
            probe.unlink()
        except OSError as error:
            raise OSError(f"cannot write into {self.folder}: {error.strerror or error}") from error

    def path(self, key):
        """The record file of the run ``key``."""
        return self.folder / RECORDS / f"{key}.json"

    def get(self, key):
        """The recorded row of the run ``key``, or None if it has not finished."""
        path = self.path(key)
        return json.loads(path.read_text()) if path.exists() else None

    def add(self, row):
        """Record a finished run (``row["key"]`` names it), then rebuild ``results.csv``."""
        write_json(self.path(row["key"]), row)
        self.rebuild_results()

    def rows(self):
        """Every finished run recorded here, by seed, then variant, then key."""
        records = []
        for path in (self.folder / RECORDS).glob("*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a record is written atomically; anything else there is not one of ours
            if isinstance(record, dict) and {"seed", "variant", "key"} <= record.keys():
                records.append(record)
        return sorted(records, key=lambda row: (row["seed"], row["variant"], row["key"]))

    def rebuild_results(self):
        """``results.csv`` anew from every record (under the lock: two writers keep every row)."""
        import pandas as pd

        path = self.folder / "results.csv"
        with self._locked():
            rows = _legacy_rows(path) + self.rows()
            text = pd.DataFrame(rows).to_csv(index=False)
            atomic_write(path, lambda tmp: tmp.write_text(text))

    @contextlib.contextmanager
    def _locked(self):
        """An exclusive lock on the folder itself (``fcntl.flock`` on its descriptor): one process at a time."""
        import fcntl

        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock


def _legacy_rows(path):
    """Rows of a ``results.csv`` written before runs were recorded one file each (no ``key`` column)."""
    import pandas as pd

    if not path.exists():
        return []
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if "key" in table.columns:  # rebuilt before: its legacy rows are those without a key
        table = table[table["key"].isna()]
    return table.to_dict("records")
