"""Multi-seed comparisons: train every variant under the same budget and seeds, then summarise.

One run is one ``(variant, seed)``. For a given seed every variant starts from the same global RNG
state (so the same initial weights wherever the shapes allow: average and max pooling have no
parameters, so their networks start identical) and sees the same data order (the loader's ``seed``).
:func:`compare` returns a tidy table, one row per run; :func:`summarize` turns it into mean ± std per
variant and paired differences with 95% confidence intervals across seeds.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import os
import time
from pathlib import Path

import torch

from minidense._files import atomic_write, write_json
from minidense.blocks import POOLS
from minidense.devices import resolve_device
from minidense.hardware import device_name, resolve_levers
from minidense.history import command_line, git_commit
from minidense.options import RECIPES, Levers, Recipe, fields_of, key_settings, parse_field, precision_of_bf16
from minidense.options import recipe as get_recipe
from minidense.profiles import Profile
from minidense.profiles import profile as get_profile

__all__ = ["compare", "summarize", "grid", "parse_vary", "epochs_long", "FashionMNISTRun", "SETTINGS",
           "format_value", "format_summary", "EPOCHS_COLUMN"]

EPOCHS_COLUMN = "epochs"  # per-epoch records of a run, a JSON list in results.csv


def _tuple_of_ints(text):
    parts = text.split("-")
    if not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"expected positive integers joined by '-' (like 4-4-4-4), got {text!r}")
    return tuple(int(part) for part in parts)


def _choice(options):
    def parse(text):
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return text
    return parse


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"must be > 0, got {text!r}")
    return value


def _true_or_false(text):
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _field_parser(field):
    return lambda text: parse_field(field, text)


# What a variant of the book's DenseNet on Fashion-MNIST may set, and how the CLI reads its values:
# the network's settings, the budget's, the recipe by name, and every field of the option groups.
MODEL_SETTINGS = {
    "transition_pool": _choice(tuple(POOLS)),  # densenet(transition_pool=...)
    "growth_rate": _positive_int,  # densenet(growth_rate=...)
    "convs_per_block": _tuple_of_ints,  # densenet(convs_per_block=...), written 4-4-4-4
}
BUDGET_SETTINGS = dict.fromkeys(("num_epochs", "batch_size", "num_train", "num_test", "resize"), _positive_int)
RECIPE_SETTINGS = {"recipe": _choice(tuple(RECIPES)),
                   **{name: _field_parser(field) for name, field in fields_of(Recipe).items()}}
LEVER_SETTINGS = {name: _field_parser(field) for name, field in fields_of(Levers).items()}
# bf16=true|false, the lever's name before fp16 joined, still means precision=bf16|fp32.
SETTINGS = {**MODEL_SETTINGS, **BUDGET_SETTINGS, **RECIPE_SETTINGS, **LEVER_SETTINGS, "bf16": _true_or_false}
_SPLIT_SIZES = {"num_train": 60_000, "num_test": 10_000}


def format_value(value):
    """A setting as the CLI writes it: ``(4, 4)`` -> ``"4-4"``, ``None`` -> ``"none"``."""
    if isinstance(value, (tuple, list)):
        return "-".join(str(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def parse_vary(specs, allowed=None, flag="--vary"):
    """Parse ``--vary`` specs like ``"transition_pool=avg,max"`` into ``{key: [values]}``.

    Args:
        specs: strings ``KEY=V1,V2,...``; several specs make a grid.
        allowed: ``{key: parser}`` (default :data:`SETTINGS`), each parser turning text into a value
            or raising ``ValueError``.
        flag: the flag the specs came from, for the error messages (``--vary`` or ``--set``).

    Raises:
        ValueError: an unknown key, a value that does not parse, no values, or a key given twice.
    """
    allowed = SETTINGS if allowed is None else allowed
    axes = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{flag} {spec!r}: expected KEY=V1,V2,... (like transition_pool=avg,max)")
        if key not in allowed:
            raise ValueError(f"{flag} {spec!r}: unknown setting {key!r}; choose one of {', '.join(allowed)}")
        if key in axes:
            raise ValueError(f"{flag} {spec!r}: {key!r} is varied twice; list all its values in one --vary")
        texts = [t.strip() for t in text.split(",") if t.strip()]
        if not texts:
            raise ValueError(f"{flag} {spec!r}: no values for {key!r}")
        values = []
        for t in texts:
            try:
                values.append(allowed[key](t))
            except ValueError as error:
                raise ValueError(f"{flag} {spec!r}: bad value for {key!r}: {error}") from None
        if len(set(map(format_value, values))) != len(values):
            raise ValueError(f"{flag} {spec!r}: a value is listed twice")
        axes[key] = values
    if not axes:
        raise ValueError(f"nothing to compare: give at least one {flag} KEY=V1,V2,...")
    return axes


def grid(**axes):
    """Every combination of the values: ``grid(transition_pool=["avg", "max"])`` ->
    ``{"transition_pool=avg": {"transition_pool": "avg"}, "transition_pool=max": {...}}``.

    Names join ``key=value`` with spaces, in the order the keys were given.
    """
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or not list(values):
            raise ValueError(f"grid: {key} needs a non-empty list of values, got {values!r}")
    variants = {}
    for combo in itertools.product(*axes.values()):
        settings = dict(zip(axes, combo))
        variants[" ".join(f"{k}={format_value(v)}" for k, v in settings.items())] = settings
    return variants


class FashionMNISTRun:
    """The default ``run_one``: the book's DenseNet on Fashion-MNIST under a profile's budget.

    ``run(settings, seed)`` seeds the global RNG with ``seed``, builds ``densenet(**model settings)``,
    loads the data with ``seed`` as its shuffling seed, trains, and returns the final metrics, the
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
    """

    def __init__(self, profile=None, device=None, root=None, probe=None, checkpoints=None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.device = resolve_device(device)  # a device this machine lacks: refused before any data is read
        self.root = root
        self.probe = probe
        self.checkpoints = None if checkpoints is None else Path(checkpoints)
        self._levers = None
        self._loaded = {}

    def levers(self):
        """The speed levers every run uses, resolved once for the device."""
        if self._levers is None:
            self._levers = resolve_levers(Levers(), self.device)
        return self._levers

    def defaults(self):
        """The settings every run starts from: the profile's budget and recipe, and the levers."""
        p = self.profile
        return dict(transition_pool="avg", growth_rate=32, convs_per_block=(4, 4, 4, 4),
                    num_epochs=p.num_epochs, batch_size=p.batch_size, num_train=p.num_train,
                    num_test=p.num_test, resize=p.resize, recipe=p.recipe,
                    **dataclasses.asdict(get_recipe(p.recipe)), **dataclasses.asdict(self.levers()))

    def resolve(self, settings):
        """``settings`` on top of :meth:`defaults`; an unknown key or an invalid recipe is a ``ValueError``."""
        unknown = [k for k in settings if k not in SETTINGS]
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; "
                             f"choose from {', '.join(SETTINGS)}")
        if "bf16" in settings:
            settings = {**{k: v for k, v in settings.items() if k != "bf16"},
                        "precision": precision_of_bf16(settings["bf16"], settings.get("precision"))}
        full = self.defaults()
        if "recipe" in settings:
            full.update(recipe=settings["recipe"], **dataclasses.asdict(get_recipe(settings["recipe"])))
        full.update(settings)
        for key, total in _SPLIT_SIZES.items():
            if full[key] is not None and full[key] > total:
                raise ValueError(f"{key}={full[key]:,} is more than the {total:,} images of the split")
        self.recipe_of(full)  # checks the combination (say nesterov=true with momentum 0)
        Levers(**{k: full[k] for k in LEVER_SETTINGS})
        return full

    @staticmethod
    def recipe_of(full):
        return Recipe(**{k: full[k] for k in fields_of(Recipe)})

    def key(self, settings, seed):
        """A run's identity: a digest of every resolved setting and the seed (the same key, the same result);
        the precision spelled as the records written before fp16 joined spell it
        (:func:`minidense.options.key_settings`)."""
        full = key_settings(self.resolve(settings))
        text = json.dumps({"seed": seed, **{k: format_value(v) for k, v in sorted(full.items())}}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def build(self, settings, seed):
        """The network of a run: the global RNG seeded with ``seed``, then ``densenet(...)``."""
        from minidense.models import densenet

        full = self.resolve(settings)
        torch.manual_seed(seed)
        return densenet(**{k: full[k] for k in MODEL_SETTINGS})

    def data(self, settings, seed):
        """``(train_iter, test_iter)`` of a run; the training order depends only on ``seed``."""
        from minidense.data import FashionMNISTBatches, load_fashion_mnist

        full = self.resolve(settings)
        key = (full["num_train"], full["num_test"])
        if key not in self._loaded:  # read and subset the files once, keep the uint8 tensors
            train_iter, test_iter = load_fashion_mnist(1, resize=28, root=self.root, device=self.device,
                                                       num_train=full["num_train"], num_test=full["num_test"])
            self._loaded[key] = (train_iter.images, train_iter.labels, test_iter.images, test_iter.labels)
        train_images, train_labels, test_images, test_labels = self._loaded[key]
        return (FashionMNISTBatches(train_images, train_labels, full["batch_size"], full["resize"], shuffle=True,
                                    seed=seed, device=self.device),
                FashionMNISTBatches(test_images, test_labels, full["batch_size"], full["resize"],
                                    device=self.device))

    def check(self, settings):
        """Raise ``ValueError`` now if ``settings`` cannot make a run (before any training)."""
        full = self.resolve(settings)
        from minidense.models import densenet

        with torch.device("meta"):
            net = densenet(**{k: full[k] for k in MODEL_SETTINGS})
        if full["resize"] < net.min_size:
            raise ValueError(f"resize={full['resize']} is too small for this network: it needs images of at "
                             f"least {net.min_size}x{net.min_size} pixels")
        if full["compile"] and self.profile.name == "smoke":
            raise ValueError("compile=true under the smoke profile: torch.compile takes minutes before the first step")

    def __call__(self, settings, seed):
        from minidense.training import train

        full = self.resolve(settings)
        net = self.build(settings, seed)
        train_iter, test_iter = self.data(settings, seed)
        checkpoint = None
        if self.checkpoints is not None:
            checkpoint = self.checkpoints / f"{self.key(settings, seed)}.pt"
        history = train(net, train_iter, test_iter, full["num_epochs"], device=self.device,
                        recipe=self.recipe_of(full), levers=Levers(**{k: full[k] for k in LEVER_SETTINGS}),
                        checkpoint=checkpoint, resume=checkpoint is not None, profile=self.profile.name,
                        progress=False, verbose=False)
        last = history.last
        result = dict(train_loss=last["train_loss"], train_acc=last["train_acc"], test_acc=last["test_acc"],
                      **{k: v for k, v in last.items() if k.startswith("test_acc_")},
                      examples_per_sec=history.examples_per_sec,
                      num_params=sum(p.numel() for p in net.parameters()),
                      device=str(self.device), device_name=device_name(self.device),
                      settings=json.dumps({k: format_value(v) for k, v in full.items()}),
                      epochs=history.records)
        if self.probe is not None:
            result.update(self.probe(net, test_iter))
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        return result


def _cell(value):
    """A setting as a table cell: tuples as ``"4-4-4-4"``, everything else as it is."""
    return format_value(value) if isinstance(value, (tuple, list)) else value


RECORDS = "runs"  # the folder of an --out holding one JSON record per finished run


def _read_records(folder):
    """Every finished run recorded under ``folder/runs/``, by seed, then variant, then key.

    The order depends on the records alone (not on the files' times, which a clone resets), so every
    machine rebuilds the same ``results.csv`` from the same records.
    """
    records = []
    for path in (folder / RECORDS).glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a record is written atomically; anything else there is not one of ours
        if isinstance(record, dict) and {"seed", "variant", "key"} <= record.keys():
            records.append(record)
    return sorted(records, key=lambda row: (row["seed"], row["variant"], row["key"]))


@contextlib.contextmanager
def _locked(folder):
    """An exclusive lock on ``folder`` itself (``fcntl.flock`` on its descriptor): one process at a time."""
    import fcntl

    descriptor = os.open(folder, os.O_RDONLY)
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


def _rebuild_results(folder):
    """``results.csv`` anew from every record in the folder (under the lock: two writers keep every row)."""
    import pandas as pd

    path = folder / "results.csv"
    with _locked(folder):
        rows = _legacy_rows(path) + _read_records(folder)
        text = pd.DataFrame(rows).to_csv(index=False)
        atomic_write(path, lambda tmp: tmp.write_text(text))


def compare(variants, seeds=(0, 1, 2), profile=None, out=None, run_one=None, device=None, root=None,
            verbose=True):
    """Train every variant with every seed; return one row per ``(variant, seed)``.

    Args:
        variants: ``{name: settings}`` (see :func:`grid`); for the default ``run_one`` the settings
            are keyword arguments of ``densenet`` (``transition_pool``, ``growth_rate``,
            ``convs_per_block``), the budget (``num_epochs``, ``num_train``, ...), ``recipe`` (a name)
            and the fields of :class:`minidense.options.Recipe` and :class:`~minidense.options.Levers`
            (see :data:`SETTINGS`); anything not set comes from the profile.
        seeds: the seeds; seed ``s`` gives every variant the same initial weights (where shapes allow)
            and the same data order.
        profile: a :class:`minidense.Profile` or its name, for the default ``run_one`` and the record.
        out: a folder. Each finished run is one record, ``runs/<key>.json``, written atomically, and
            ``results.csv`` is rebuilt from all records under a lock, so several ``compare`` calls may
            share the folder and keep every row. A run whose key (every setting and the seed, see
            :meth:`FashionMNISTRun.key`) is already recorded is not trained again.
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

    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"variants must be a non-empty dict name -> settings, got {variants!r}")
    for name, settings in variants.items():
        if not isinstance(settings, dict):
            raise ValueError(f"variant {name!r}: settings must be a dict, got {settings!r}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
    p = profile if isinstance(profile, Profile) or run_one is not None else get_profile(profile)
    if run_one is None:
        run_one = FashionMNISTRun(p, device=device, root=root)
    if hasattr(run_one, "check"):
        for settings in variants.values():
            run_one.check(settings)
    profile_name = p.name if isinstance(p, Profile) else p

    def key_of(name, settings, seed):
        if hasattr(run_one, "key"):
            return run_one.key(settings, seed)
        text = json.dumps({"seed": seed, "profile": profile_name,
                           **{k: format_value(v) for k, v in sorted(settings.items())}}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    folder = None if out is None else Path(out)
    if folder is not None:
        (folder / RECORDS).mkdir(parents=True, exist_ok=True)
        _check_folder_writable(folder)
    varied = list(dict.fromkeys(k for settings in variants.values() for k in settings))
    command = command_line()
    commit = git_commit()

    rows = []
    for seed in seeds:  # seed-major: an interruption leaves complete pairs behind
        for name, settings in variants.items():
            key = key_of(name, settings, seed)
            record_path = None if folder is None else folder / RECORDS / f"{key}.json"
            if record_path is not None and record_path.exists():
                row = json.loads(record_path.read_text())
                rows.append({**row, "variant": name})
                if verbose:
                    print(f"{name}, seed {seed}: already recorded in {record_path}, skipped")
                continue
            start = time.perf_counter()
            result = dict(run_one(settings, seed))
            wall = time.perf_counter() - start
            row = {"variant": name, "seed": seed, "key": key, **{k: _cell(settings.get(k)) for k in varied}}
            epochs = result.pop(EPOCHS_COLUMN, [])
            row.update(result)
            row.update({EPOCHS_COLUMN: json.dumps(epochs), "wall_seconds": wall, "profile": profile_name,
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "git_commit": commit, "command": command})
            rows.append(row)
            if folder is not None:
                write_json(record_path, row)
                _rebuild_results(folder)
            if verbose:
                metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                                    if isinstance(v, float) and k != "examples_per_sec")
                print(f"{name}, seed {seed}: {metrics} ({wall:.1f} s)")
    return pd.DataFrame(rows)


def _check_folder_writable(folder):
    probe = folder / RECORDS / f".writable.{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OSError(f"cannot write into {folder}: {error.strerror or error}") from error


def epochs_long(table):
    """The per-epoch records of every run as a long table: ``variant, seed, epoch, <metrics>``."""
    import pandas as pd

    records = []
    for row in table.itertuples(index=False):
        epochs = getattr(row, EPOCHS_COLUMN)
        for record in json.loads(epochs) if isinstance(epochs, str) else epochs:
            records.append({"variant": row.variant, "seed": row.seed, **record})
    return pd.DataFrame(records)


def _t_quantile(n):
    """The 97.5% quantile of Student's t with ``n - 1`` degrees of freedom (NaN for n < 2)."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def _describe(values):
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    half = _t_quantile(n) * std / math.sqrt(n) if n > 1 else float("nan")
    return dict(n=n, mean=mean, std=std, ci_low=mean - half, ci_high=mean + half)


def summarize(table, metric="test_acc", baseline=None):
    """Mean ± std per variant, and each variant's paired difference from a baseline with a 95% CI.

    For variant ``v`` and baseline ``b`` the differences ``d_s = metric(v, s) - metric(b, s)`` are
    taken over the seeds ``s`` both have; the interval is
    ``mean(d) ± t_{0.975, n-1} · std(d) / sqrt(n)`` (Student's t, ``n`` seeds, sample std).
    The same formula gives each variant's own interval for its mean.

    Args:
        table: the output of :func:`compare` (at least ``variant``, ``seed`` and ``metric``).
        metric: the column to summarise (``test_acc``, ``wall_seconds``, ...).
        baseline: the variant others are compared with (default: the first in the table).

    Returns:
        A DataFrame with columns ``kind`` (``"variant"`` or ``"difference"``), ``variant``
        (for a difference ``"max - avg"``-style names), ``metric, n, mean, std, ci_low, ci_high``.
    """
    import pandas as pd

    for column in ("variant", "seed", metric):
        if column not in table.columns:
            raise ValueError(f"summarize needs a {column!r} column; the table has {', '.join(table.columns)}")
    names = list(dict.fromkeys(table["variant"]))
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not a variant of the table ({', '.join(names)})")
    by_variant = {name: table[table["variant"] == name].set_index("seed")[metric].astype(float) for name in names}
    rows = [dict(kind="variant", variant=name, metric=metric, **_describe(by_variant[name])) for name in names]
    for name in names:
        if name == baseline:
            continue
        diff = (by_variant[name] - by_variant[baseline]).dropna()  # aligned on the seed
        rows.append(dict(kind="difference", variant=f"{name} - {baseline}", metric=metric, **_describe(diff)))
    return pd.DataFrame(rows, columns=["kind", "variant", "metric", "n", "mean", "std", "ci_low", "ci_high"])


def format_summary(summary):
    """The summary as text: ``mean ± std`` per variant, differences with their 95% CI."""
    lines = []
    for row in summary.itertuples(index=False):
        if row.kind == "variant":
            lines.append(f"{row.variant}: {row.metric} {row.mean:.4f} ± {row.std:.4f} (mean ± std, {row.n} seeds)")
        else:
            lines.append(f"{row.variant}: {row.mean:+.4f}, 95% CI [{row.ci_low:+.4f}, {row.ci_high:+.4f}] "
                         f"(paired over {row.n} seeds)")
    return "\n".join(lines)
