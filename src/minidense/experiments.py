"""Multi-seed comparisons: train every variant under the same budget and seeds, then summarise.

One run is one ``(variant, seed)``. For a given seed every variant starts from the same global RNG
state (so the same initial weights wherever the shapes allow: average and max pooling have no
parameters, so their networks start identical) and sees the same data order (the loader's ``seed``).
:func:`compare` returns a tidy table, one row per run; :func:`minidense.summarize` turns it into mean
± std per variant and paired differences with 95% confidence intervals across seeds.

The variants come from :mod:`minidense.grids`, the settings and their key from
:mod:`minidense.settings`, the record of each finished run goes to :mod:`minidense.runs`, and the
statistics are :mod:`minidense.stats`'.
"""

import datetime
import functools
import hashlib
import json
import time
from pathlib import Path

import torch

from minidense.devices import resolve_device
from minidense.hardware import device_name, resolve_levers
from minidense.history import command_line, git_commit
from minidense.options import Levers, format_value
from minidense.profiles import Profile
from minidense.profiles import profile as get_profile
from minidense.runs import RunRecords
from minidense.settings import NAMES, OLD_NAMES, Settings, parse_setting

__all__ = ["build_network", "compare", "epochs_long", "FashionMNISTRun", "SETTINGS", "EPOCHS_COLUMN"]

EPOCHS_COLUMN = "epochs"  # per-epoch records of a run, a JSON list in results.csv

# What a variant may set, and how its text is read: every setting of minidense.settings (and its old names).
SETTINGS = {name: functools.partial(parse_setting, name) for name in (*NAMES, *OLD_NAMES)}


def build_network(network):
    """The network a :class:`~minidense.options.Network` describes: ``densenet(...)``, or for the rows task
    ``row_reader(...)`` (its encoder takes the same block settings)."""
    blocks = {name: getattr(network, name) for name in ("transition_pool", "growth_rate", "convs_per_block")}
    if network.task == "rows":
        from minidense.readers import row_reader

        return row_reader(network.backbone, network.max_items, **blocks)
    from minidense.models import densenet

    return densenet(**blocks)


class FashionMNISTRun:
    """The default ``run_one``: the book's DenseNet on Fashion-MNIST under a profile's budget.

    ``run(settings, seed)`` seeds the global RNG with ``seed``, builds ``densenet(**network settings)``
    (for ``task="rows"``: ``row_reader(...)``, trained on as many rows as the budget has images, made
    from those images), loads the data with ``seed`` as its shuffling seed, trains, and returns the final metrics, the
    per-epoch records and the parameter count. Settings not given come from the profile and its
    recipe (``recipe=NAME`` starts from another named recipe; a recipe field given beside it
    changes that field). The speed levers are resolved once here, not per run, so every variant
    trains in the same precision.

    Args:
        profile: a :class:`minidense.Profile` or its name (``None``: :func:`minidense.profile`'s default).
        device: torch device (default CUDA when available, else the CPU).
        root: data root (default ``MINIDENSE_DATA``, else ``~/.cache/minidense``).
        probe: optional ``probe(net, test_iter) -> dict`` of extra scalars, computed after training.
        checkpoints: optional folder; each run keeps its checkpoint there while it trains (named by
            its key), so an interrupted run resumes from its last finished epoch. Removed once the
            run has finished.
        levers: a :class:`minidense.Levers` every run starts from (default: all decided for the device).
    """

    def __init__(self, profile=None, device=None, root=None, probe=None, checkpoints=None, levers=None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.device = resolve_device(device)  # a device this machine lacks: refused before any data is read
        self.root = root
        self.probe = probe
        self.checkpoints = None if checkpoints is None else Path(checkpoints)
        self.levers = resolve_levers(Levers() if levers is None else levers, self.device)
        self._loaded = {}

    def resolve(self, settings):
        """The :class:`~minidense.settings.Settings` of a variant: ``settings`` (``{name: value}``) on top of
        the profile's budget and recipe and the resolved levers; an unknown name or an invalid value is a
        ``ValueError``."""
        return Settings.of_profile(self.profile, self.levers).replace(**settings)

    def key(self, settings, seed):
        """A run's identity: :meth:`minidense.settings.Settings.key` of its resolved settings and the seed."""
        return self.resolve(settings).key(seed)

    def build(self, settings, seed):
        """The network of a run: the global RNG seeded with ``seed``, then ``densenet(...)`` (the rows task:
        ``row_reader(...)``)."""
        network = self.resolve(settings).network
        torch.manual_seed(seed)
        return build_network(network)

    def data(self, settings, seed):
        """``(train_iter, test_iter)`` of a run; the training order depends only on ``seed``."""
        from minidense.data import FashionMNISTBatches, load_fashion_mnist

        full = self.resolve(settings)
        budget, network = full.budget, full.network
        split = (budget.num_train, budget.num_test)
        if split not in self._loaded:  # read and subset the files once, keep the uint8 tensors
            train_iter, test_iter = load_fashion_mnist(1, resize=28, root=self.root, device=self.device,
                                                       num_train=budget.num_train, num_test=budget.num_test)
            self._loaded[split] = (train_iter.images, train_iter.labels, test_iter.images, test_iter.labels)
        train_images, train_labels, test_images, test_labels = self._loaded[split]
        if network.task == "rows":  # as many rows as the budget has images, from its images
            from minidense.rows import GarmentRows

            return (GarmentRows(train_images, train_labels, budget.batch_size, len(train_labels),
                                network.max_items, seed=seed, device=self.device),
                    GarmentRows(test_images, test_labels, budget.batch_size, len(test_labels), network.max_items,
                                seed=seed, fresh=False, device=self.device))
        return (FashionMNISTBatches(train_images, train_labels, budget.batch_size, budget.resize, shuffle=True,
                                    seed=seed, device=self.device),
                FashionMNISTBatches(test_images, test_labels, budget.batch_size, budget.resize,
                                    device=self.device))

    def check(self, settings):
        """Raise ``ValueError`` now if ``settings`` cannot make a run (before any training)."""
        from minidense.rows import HEIGHT, WIDTH, check_canvas
        from minidense.tasks import TASKS

        full = self.resolve(settings)
        with torch.device("meta"):
            net = build_network(full.network)
        if full.network.task == "rows":
            check_canvas(full.network.max_items, HEIGHT, WIDTH)
            TASKS["rows"].check(full.recipe)
        elif full.budget.resize < net.min_size:
            raise ValueError(f"resize={full.budget.resize} is too small for this network: it needs images of at "
                             f"least {net.min_size}x{net.min_size} pixels")
        if full.levers.compile and self.profile.name == "smoke":
            raise ValueError("compile=true under the smoke profile: torch.compile takes minutes before the first step")

    def __call__(self, settings, seed):
        from minidense.training import train

        full = self.resolve(settings)
        net = self.build(settings, seed)
        train_iter, test_iter = self.data(settings, seed)
        checkpoint = None if self.checkpoints is None else self.checkpoints / f"{full.key(seed)}.pt"
        history = train(net, train_iter, test_iter, full.budget.num_epochs, device=self.device, recipe=full.recipe,
                        levers=full.levers, checkpoint=checkpoint, resume=checkpoint is not None,
                        profile=self.profile.name, progress=False, verbose=False)
        last = history.last
        result = dict(train_loss=last["train_loss"], train_acc=last["train_acc"], test_acc=last["test_acc"],
                      **{k: v for k, v in last.items() if k.startswith("test_acc_")},
                      examples_per_sec=history.examples_per_sec,
                      num_params=sum(p.numel() for p in net.parameters()),
                      device=str(self.device), device_name=device_name(self.device),
                      settings=json.dumps(full.texts()), epochs=history.records)
        if self.probe is not None:
            result.update(self.probe(net, test_iter))
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        return result


def _cell(value):
    """A setting as a table cell: tuples as ``"4-4-4-4"``, everything else as it is."""
    return format_value(value) if isinstance(value, (tuple, list)) else value


def _check_arguments(variants, seeds):
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"variants must be a non-empty dict name -> settings, got {variants!r}")
    for name, settings in variants.items():
        if not isinstance(settings, dict):
            raise ValueError(f"variant {name!r}: settings must be a dict, got {settings!r}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
    return seeds


def _key_function(run_one, profile_name):
    """``key(settings, seed)``: ``run_one``'s own, else a digest of the settings, the seed and the profile."""
    if hasattr(run_one, "key"):
        return run_one.key

    def key(settings, seed):
        text = json.dumps({"seed": seed, "profile": profile_name,
                           **{k: format_value(v) for k, v in sorted(settings.items())}}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    return key


def _train_one(run_one, name, settings, seed, key, varied, provenance, verbose):
    """The row of one run, trained now: ``variant, seed, key``, the varied settings, ``run_one``'s results,
    the per-epoch records and where and when it ran."""
    start = time.perf_counter()
    result = dict(run_one(settings, seed))
    wall = time.perf_counter() - start
    row = {"variant": name, "seed": seed, "key": key, **{k: _cell(settings.get(k)) for k in varied}}
    epochs = result.pop(EPOCHS_COLUMN, [])
    row.update(result)
    row.update({EPOCHS_COLUMN: json.dumps(epochs), "wall_seconds": wall, "profile": provenance["profile"],
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "git_commit": provenance["git_commit"], "command": provenance["command"]})
    if verbose:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                            if isinstance(v, float) and k != "examples_per_sec")
        print(f"{name}, seed {seed}: {metrics} ({wall:.1f} s)")
    return row


def compare(variants, seeds=(0, 1, 2), profile=None, out=None, run_one=None, device=None, root=None,
            verbose=True):
    """Train every variant with every seed; return one row per ``(variant, seed)``.

    Args:
        variants: ``{name: settings}`` (see :func:`minidense.grid`); for the default ``run_one`` the
            settings are any of :data:`minidense.settings.NAMES`: the network's (``transition_pool``,
            ``growth_rate``, ``convs_per_block``), the budget's (``num_epochs``, ``num_train``, ...,
            ``recipe``: a name), and the fields of :class:`minidense.Recipe` and :class:`minidense.Levers`;
            anything not set comes from the profile.
        seeds: the seeds; seed ``s`` gives every variant the same initial weights (where shapes allow)
            and the same data order.
        profile: a :class:`minidense.Profile` or its name, for the default ``run_one`` and the record.
        out: a folder. Each finished run is one record, ``runs/<key>.json``, written atomically, and
            ``results.csv`` is rebuilt from all records under a lock (:mod:`minidense.runs`), so several
            ``compare`` calls may share the folder and keep every row. A run whose key (every setting
            and the seed, see :meth:`minidense.settings.Settings.key`) is already recorded is not
            trained again.
        run_one: ``run_one(settings, seed) -> dict``; default :class:`FashionMNISTRun`. The dict holds
            scalars (final metrics, ``num_params``, ``device``, ...) and ``"epochs"``: a list of
            per-epoch dicts. It must seed whatever it initialises from ``seed``; its ``check(settings)``
            and ``key(settings, seed)``, where it has them, validate before any training and name a run.
        device, root: passed to :class:`FashionMNISTRun`.
        verbose: print one line per run.

    Returns:
        A pandas DataFrame of this call's runs: ``variant``, ``seed``, ``key``, one column per varied
        setting, the scalars ``run_one`` returned, ``epochs`` (a JSON list), ``wall_seconds``,
        ``profile``, ``date``, ``git_commit``, ``command``.
    """
    import pandas as pd

    seeds = _check_arguments(variants, seeds)
    p = profile if isinstance(profile, Profile) or run_one is not None else get_profile(profile)
    run_one = FashionMNISTRun(p, device=device, root=root) if run_one is None else run_one
    for settings in variants.values() if hasattr(run_one, "check") else ():
        run_one.check(settings)
    profile_name = p.name if isinstance(p, Profile) else p
    key_of = _key_function(run_one, profile_name)
    records = None if out is None else RunRecords(out)
    varied = list(dict.fromkeys(k for settings in variants.values() for k in settings))
    provenance = {"profile": profile_name, "git_commit": git_commit(), "command": command_line()}

    rows = []
    for seed in seeds:  # seed-major: an interruption leaves complete pairs behind
        for name, settings in variants.items():
            key = key_of(settings, seed)
            row = None if records is None else records.get(key)
            if row is not None:
                rows.append({**row, "variant": name})
                if verbose:
                    print(f"{name}, seed {seed}: already recorded in {records.path(key)}, skipped")
                continue
            row = _train_one(run_one, name, settings, seed, key, varied, provenance, verbose)
            rows.append(row)
            if records is not None:
                records.add(row)
    return pd.DataFrame(rows)


def epochs_long(table):
    """The per-epoch records of every run as a long table: ``variant, seed, epoch, <metrics>``."""
    import pandas as pd

    records = []
    for row in table.itertuples(index=False):
        epochs = getattr(row, EPOCHS_COLUMN)
        for record in json.loads(epochs) if isinstance(epochs, str) else epochs:
            records.append({"variant": row.variant, "seed": row.seed, **record})
    return pd.DataFrame(records)
