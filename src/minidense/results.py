"""Recorded runs (``book/results/``): found beside the chapter, else fetched from the book's repository.

A chapter run from a clone finds ``results/`` next to it (the book build runs notebooks from
``book/``). In Colab only the notebook is there, so the file is downloaded once from the
repository and cached under ``~/.cache/minidense/results/``.
"""

import html
import json
import urllib.request
from pathlib import Path

from minidense.files import atomic_write

__all__ = ["REPOSITORY", "BRANCH", "recorded", "how_recorded", "Provenance"]

REPOSITORY = "https://github.com/minidense/minidense"  # as in _config.yml (a test checks they agree)
BRANCH = "main"


def _raw_url(name):
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{BRANCH}/book/results/{name}"


def recorded(name, cache=None):
    """Local path of the recorded result ``name``, e.g. ``"train-cpu.json"`` or ``"compare-pooling-cpu/results.csv"``.

    Looks in ``results/`` and ``book/results/`` under the working directory, then in the cache
    (default ``~/.cache/minidense/results``); otherwise downloads it from the repository.
    """
    for folder in (Path("results"), Path("book") / "results"):
        if (folder / name).is_file():
            return folder / name
    cached = Path(cache or Path.home() / ".cache" / "minidense" / "results") / name
    if cached.is_file():
        return cached
    url = _raw_url(name)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except OSError as error:
        raise FileNotFoundError(f"the recorded result {name!r} is not in results/ or book/results/ here, and "
                                f"fetching {url} failed ({error})") from error
    return atomic_write(cached, lambda tmp: tmp.write_bytes(data))


_PROVENANCE_FIELDS = ("command", "profile", "device", "device_name", "torch", "git_commit", "date")


def _entry(found, run=None, seconds=None):
    """One row of provenance: the fields of ``found`` that are set, then the run and its wall seconds."""
    entry = {field: found[field] for field in _PROVENANCE_FIELDS if found.get(field) not in (None, "")}
    if run is not None:
        entry["run"] = run
    if seconds is not None:
        entry["seconds"] = round(float(seconds))
    return entry


def _provenances(name):
    """The provenance rows of the recorded result ``name``: a History or benchmark JSON (its
    ``provenance``), or a comparison folder (one row per run of its ``results.csv``)."""
    if name.endswith(".json"):
        data = json.loads(recorded(name).read_text())
        return [_entry(data.get("provenance", data))]
    import pandas as pd

    table = pd.read_csv(recorded(f"{name}/results.csv"))
    return [_entry(row, run=f"{row['variant']}, seed {row['seed']}", seconds=row.get("wall_seconds"))
            for row in table.to_dict("records")]


class Provenance:
    """How recorded results were made, shown as a collapsed block in a notebook, as text elsewhere.

    ``rows`` holds one dict per record: command, profile, device and its name, torch, git commit and
    date, and for each run of a comparison the run (variant and seed) and its wall seconds.
    """

    def __init__(self, names, rows):
        self.names = names
        self.rows = rows

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def __repr__(self):
        return f"<Provenance of {', '.join(self.names)}: {len(self.rows)} record(s)>"

    def __str__(self):
        return f"How this was recorded ({', '.join(self.names)}):\n{self.to_frame().to_string(index=False)}"

    def _repr_html_(self):
        table = self.to_frame().to_html(index=False, border=0, classes="provenance")
        return (f"<details class='provenance'><summary>How this was recorded: {html.escape(', '.join(self.names))}"
                f"</summary>{table}</details>")


def how_recorded(*names):
    """Where and how the recorded results ``names`` were made: a :class:`Provenance`, which a notebook
    shows as a collapsed "How this was recorded" block. A name is a JSON record under ``book/results/``
    (``"train-cpu.json"``) or a comparison folder (``"compare-full"``: one row per run)."""
    if not names:
        raise TypeError("how_recorded() needs the name of at least one recorded result, e.g. 'train-cpu.json'")
    return Provenance(list(names), [row for name in names for row in _provenances(name)])
