"""Files written so that an interruption never leaves half of one: the library's records, checkpoints,
probe answers and results, and the benchmarks' JSON, all go through :func:`atomic_write`."""

import json
import os
from pathlib import Path

__all__ = ["atomic_write", "write_json", "check_writable"]


def atomic_write(path, write):
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``; returns the path.

    The folder is made if needed. An interruption or a failure mid-write (a full disk, kill -9)
    never leaves half a file at ``path``: a reader sees the old file or the new one. The temporary
    file is unique to this process and removed when ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    text = json.dumps(data, indent=1) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def check_writable(path):
    """Raise ``OSError`` now, before any work, if the file ``path`` cannot be written (its folder is made)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.writable")
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from error
    if path.is_dir():
        raise OSError(f"cannot write {path}: it is a folder")
