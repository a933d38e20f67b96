"""Multi-seed comparisons: train every variant under the same budget and seeds, then summarise.

One run is one ``(variant, seed)``. For a given seed every variant starts from the same global RNG
state (so the same initial weights wherever the shapes allow: average and max pooling have no
parameters, so their networks start identical) and sees the same data order (the loader's ``seed``).
:func:`compare` returns a tidy table, one row per run; :func:`summarize` turns it into mean ± std per
variant and paired differences with 95% confidence intervals across seeds.
"""

import datetime
import itertools
import json
import math
import os
import time
from pathlib import Path

import torch

from minidense.blocks import POOLS
from minidense.hardware import bf16_pays, channels_last_pays, default_device, device_name
from minidense.history import git_commit, command_line
from minidense.profiles import Profile, profile as get_profile
from minidense.training import SCHEDULES

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
        value = None if text == "none" else text
        if value not in options:
            raise ValueError(f"expected one of {', '.join('none' if o is None else o for o in options)}, "
                             f"got {text!r}")
        return value
    return parse


def _number(kind, low, strict):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value < low or (strict and value == low) or not math.isfinite(value):
            raise ValueError(f"must be {'>' if strict else '>='} {low}, got {text!r}")
        return value
    return parse


def _boolean(text):
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


# What a variant of the book's DenseNet on Fashion-MNIST may set, and how the CLI reads its values.
MODEL_SETTINGS = {
    "transition_pool": _choice(tuple(POOLS)),  # densenet(transition_pool=...)
    "growth_rate": _number(int, 0, strict=True),  # densenet(growth_rate=...)
    "convs_per_block": _tuple_of_ints,  # densenet(convs_per_block=...), written 4-4-4-4
}
TRAIN_SETTINGS = {
    "num_epochs": _number(int, 0, strict=True),
    "lr": _number(float, 0, strict=True),
    "batch_size": _number(int, 0, strict=True),
    "num_train": _number(int, 0, strict=True),
    "num_test": _number(int, 0, strict=True),
    "resize": _number(int, 0, strict=True),
    "schedule": _choice(SCHEDULES),
    "momentum": _number(float, 0, strict=False),
    "nesterov": _boolean,
    "weight_decay": _number(float, 0, strict=False),
    "precise_bn": _number(int, 0, strict=False),
    "bf16": _boolean,
    "channels_last": _boolean,
}
SETTINGS = {**MODEL_SETTINGS, **TRAIN_SETTINGS}


def format_value(value):
    """A setting as the CLI writes it: ``(4, 4)`` -> ``"4-4"``, ``None`` -> ``"none"``."""
    if isinstance(value, (tuple, list)):
        return "-".join(str(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def parse_vary(specs, allowed=None):
    """Parse ``--vary`` specs like ``"transition_pool=avg,max"`` into ``{key: [values]}``.

    Args:
        specs: strings ``KEY=V1,V2,...``; several specs make a grid.
        allowed: ``{key: parser}`` (default :data:`SETTINGS`), each parser turning text into a value
            or raising ``ValueError``.

    Raises:
        ValueError: an unknown key, a value that does not parse, no values, or a key given twice.
    """
    allowed = SETTINGS if allowed is None else allowed
    axes = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--vary {spec!r}: expected KEY=V1,V2,... (like transition_pool=avg,max)")
        if key not in allowed:
            raise ValueError(f"--vary {spec!r}: unknown setting {key!r}; choose one of {', '.join(allowed)}")
        if key in axes:
            raise ValueError(f"--vary {spec!r}: {key!r} is varied twice; list all its values in one --vary")
        texts = [t.strip() for t in text.split(",") if t.strip()]
        if not texts:
            raise ValueError(f"--vary {spec!r}: no values for {key!r}")
        values = []
        for t in texts:
            try:
                values.append(allowed[key](t))
            except ValueError as error:
                raise ValueError(f"--vary {spec!r}: bad value for {key!r}: {error}") from None
        if len(set(map(format_value, values))) != len(values):
            raise ValueError(f"--vary {spec!r}: a value is listed twice")
        axes[key] = values
    if not axes:
        raise ValueError("nothing to compare: give at least one --vary KEY=V1,V2,...")
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
    per-epoch records and the parameter count. Settings not given come from the profile. bf16 and
    channels-last are probed once here, not per run, so every variant trains in the same precision.

    Args:
        profile: a :class:`minidense.Profile` or its name (``None``: :func:`minidense.profile`'s default).
        device: torch device (default CUDA when available, else the CPU).
        root: data root (default ``MINIDENSE_DATA``, else ``~/.cache/minidense``).
        probe: optional ``probe(net, test_iter) -> dict`` of extra scalars, computed after training.
    """

    def __init__(self, profile=None, device=None, root=None, probe=None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.device = torch.device(device) if device is not None else default_device()
        self.root = root
        self.probe = probe
        self._loaded = {}

    def defaults(self):
        """The settings every run starts from: the profile's, and the speed levers probed once."""
        p = self.profile
        bf16 = bf16_pays(self.device)
        return dict(transition_pool="avg", growth_rate=32, convs_per_block=(4, 4, 4, 4),
                    num_epochs=p.num_epochs, lr=p.lr, batch_size=p.batch_size, num_train=p.num_train,
                    num_test=p.num_test, resize=p.resize, schedule=p.schedule, momentum=p.momentum,
                    nesterov=p.nesterov, weight_decay=p.weight_decay, precise_bn=p.precise_bn,
                    bf16=bf16, channels_last=channels_last_pays(self.device, bf16))

    def resolve(self, settings):
        """``settings`` on top of :meth:`defaults`; an unknown key is a ``ValueError``."""
        unknown = [k for k in settings if k not in SETTINGS]
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; "
                             f"choose from {', '.join(SETTINGS)}")
        return {**self.defaults(), **settings}

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
        """Raise ``ValueError`` now if ``settings`` cannot make a network (before any training)."""
        net = self.build(settings, seed=0)
        resize = self.resolve(settings)["resize"]
        if resize < net.min_size:
            raise ValueError(f"resize={resize} is too small for this network: it needs images of at least "
                             f"{net.min_size}x{net.min_size} pixels")

    def __call__(self, settings, seed):
        from minidense.training import train

        full = self.resolve(settings)
        net = self.build(settings, seed)
        train_iter, test_iter = self.data(settings, seed)
        history = train(net, train_iter, test_iter, full["num_epochs"], full["lr"], device=self.device,
                        momentum=full["momentum"], nesterov=full["nesterov"], weight_decay=full["weight_decay"],
                        schedule=full["schedule"], precise_bn=full["precise_bn"], bf16=full["bf16"],
                        channels_last=full["channels_last"], profile=self.profile.name, plot=False,
                        progress=False, verbose=False)
        last = history.last
        result = dict(train_loss=last["train_loss"], train_acc=last["train_acc"], test_acc=last["test_acc"],
                      examples_per_sec=history.examples_per_sec,
                      num_params=sum(p.numel() for p in net.parameters()),
                      device=str(self.device), device_name=device_name(self.device),
                      settings=json.dumps({k: format_value(v) for k, v in full.items()}),
                      epochs=history.records)
        if self.probe is not None:
            result.update(self.probe(net, test_iter))
        return result


def _cell(value):
    """A setting as a table cell: tuples as ``"4-4-4-4"``, everything else as it is."""
    return format_value(value) if isinstance(value, (tuple, list)) else value


def _read_results(path):
    import pandas as pd

    if not path.exists():
        return None
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _write_results(table, path):
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)  # an interruption mid-write never leaves half a file


def compare(variants, seeds=(0, 1, 2), profile=None, out=None, run_one=None, device=None, root=None,
            verbose=True):
    """Train every variant with every seed; return one row per ``(variant, seed)``.

    Args:
        variants: ``{name: settings}`` (see :func:`grid`); for the default ``run_one`` the settings
            are keyword arguments of ``densenet`` (``transition_pool``, ``growth_rate``,
            ``convs_per_block``) and training options (``num_epochs``, ``lr``, ``num_train``, ...,
            see :data:`SETTINGS`); anything not set comes from the profile.
        seeds: the seeds; seed ``s`` gives every variant the same initial weights (where shapes allow)
            and the same data order.
        profile: a :class:`minidense.Profile` or its name, for the default ``run_one`` and the record.
        out: a folder; ``results.csv`` there gets each run as it finishes, and runs already in it
            are skipped (so an interrupted comparison resumes where it stopped).
        run_one: ``run_one(settings, seed) -> dict``; default :class:`FashionMNISTRun`. The dict holds
            scalars (final metrics, ``num_params``, ``device``, ...) and ``"epochs"``: a list of
            per-epoch dicts. It must seed whatever it initialises from ``seed``.
        device, root: passed to :class:`FashionMNISTRun`.
        verbose: print one line per run.

    Returns:
        A pandas DataFrame: ``variant``, ``seed``, one column per varied setting, the scalars
        ``run_one`` returned, ``epochs`` (a JSON list), ``wall_seconds``, ``profile``, ``date``,
        ``git_commit``, ``command``. Rows from an earlier, interrupted call with the same ``out``
        come first.
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

    path = None
    table = None
    if out is not None:
        path = Path(out) / "results.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = _read_results(path)
    done = set() if table is None else set(zip(table["variant"], table["seed"].astype(int)))
    rows = [] if table is None else table.to_dict("records")
    varied = list(dict.fromkeys(k for settings in variants.values() for k in settings))
    command = command_line()
    commit = git_commit()

    for seed in seeds:  # seed-major: an interruption leaves complete pairs behind
        for name, settings in variants.items():
            if (name, seed) in done:
                if verbose:
                    print(f"{name}, seed {seed}: already in {path}, skipped")
                continue
            start = time.perf_counter()
            result = dict(run_one(settings, seed))
            wall = time.perf_counter() - start
            row = {"variant": name, "seed": seed, **{k: _cell(settings.get(k)) for k in varied}}
            epochs = result.pop(EPOCHS_COLUMN, [])
            row.update(result)
            row.update({EPOCHS_COLUMN: json.dumps(epochs), "wall_seconds": wall, "profile": profile_name,
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "git_commit": commit, "command": command})
            rows.append(row)
            if path is not None:
                _write_results(pd.DataFrame(rows), path)
            if verbose:
                metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                                    if isinstance(v, float) and k != "examples_per_sec")
                print(f"{name}, seed {seed}: {metrics} ({wall:.1f} s)")
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
