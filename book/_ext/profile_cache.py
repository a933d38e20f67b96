"""A book built under one profile and rebuilt under another executes its chapters again.

The jupyter-cache knows a notebook by its code, not by ``MINIDENSE_PROFILE``, and Sphinx's saved
doctrees know neither: without this extension a book built under ``smoke`` and rebuilt under ``cpu``
silently keeps the smoke outputs. Here each profile keeps its executed notebooks in a folder of its
own, ``_build/.jupyter_cache/<profile>/``, and the profile is a configuration value that Sphinx
compares with the last build's (``rebuild="env"``): a changed profile re-reads every document, and
every chapter finds no outputs for the new profile in its folder, so it executes again. Both
editions (English and Chinese) read the same folder.
"""

import warnings
from pathlib import Path

import yaml


def current_profile():
    """The profile the chapters will run under: ``minidense.profile()``'s name, resolved as they resolve it."""
    # With torch imported, sphinx-external-toc's scan of live objects touches the deprecated
    # torch.distributed.reduce_op, which warns; nothing the book uses.
    warnings.filterwarnings("ignore", message=".*torch.distributed.reduce_op", category=FutureWarning)
    import minidense

    return minidense.profile().name


def cache_folder(root, profile=None, base=""):
    """The jupyter-cache folder of ``profile`` (default: the current one) for the book at ``root``."""
    base = Path(base) if base else Path(root) / "_build" / ".jupyter_cache"
    return base / (profile or current_profile())


def toc_notebooks(root):
    """The notebooks of the book's ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    entries = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            entries += [chapter["file"], *(section["file"] for section in chapter.get("sections", []))]
    return [Path(root) / f"{entry}.ipynb" for entry in entries if (Path(root) / f"{entry}.ipynb").exists()]


def missing_outputs(root, profile=None):
    """The book's notebooks (relative paths) that have no executed copy in the profile's cache."""
    import nbformat
    from jupyter_cache import get_cache

    folder = cache_folder(root, profile)
    cache = get_cache(folder) if folder.exists() else None
    missing = []
    for path in toc_notebooks(root):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except (AttributeError, KeyError):  # no cache yet, or no executed copy of this notebook
            missing.append(str(path.relative_to(root)))
    return missing


def default_profile(config):
    """The current profile, or none where nothing executes (extracting the messages needs no library)."""
    return current_profile() if config.nb_execution_mode != "off" else ""


def use_profile_cache(app, config):
    if config.minidense_profile:
        config.nb_execution_cache_path = str(cache_folder(app.srcdir, config.minidense_profile,
                                                          config.nb_execution_cache_path))


def setup(app):
    app.add_config_value("minidense_profile", default_profile, "env", types=[str])
    app.connect("config-inited", use_profile_cache)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
