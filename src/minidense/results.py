"""Recorded runs (``book/results/``): found beside the chapter, else fetched from the book's repository.

A chapter run from a clone finds ``results/`` next to it (the book build runs notebooks from
``book/``). In Colab only the notebook is there, so the file is downloaded once from the
repository and cached under ``~/.cache/minidense/results/``.
"""

import urllib.request
from pathlib import Path

from minidense._files import atomic_write

__all__ = ["REPOSITORY", "BRANCH", "recorded"]

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
