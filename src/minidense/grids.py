"""The variants of a comparison: ``--vary``/``--set`` specs parsed, and every combination of their values.

A variant is ``{setting: value}`` over the names of :mod:`minidense.settings` (``transition_pool``,
``growth_rate``, ``recipe``, ``lr``, ``precision``, ...), each value read from its text as the command
line writes it (:func:`minidense.settings.parse_setting`).
"""

import itertools

from minidense.options import format_value
from minidense.settings import NAMES, OLD_NAMES, parse_setting

__all__ = ["parse_vary", "grid", "variants"]


def parse_vary(specs, flag="--vary"):
    """Parse specs like ``"transition_pool=avg,max"`` into ``{setting: [values]}``.

    Args:
        specs: strings ``KEY=V1,V2,...``; several specs make a grid.
        flag: the flag the specs came from, for the error messages (``--vary`` or ``--set``).

    Raises:
        ValueError: an unknown key, a value that does not parse, no values, or a key given twice.
    """
    axes = {}
    for spec in specs:
        key, values = _parse_spec(spec, flag)
        if key in axes:
            raise ValueError(f"{flag} {spec!r}: {key!r} is varied twice; list all its values in one --vary")
        axes[key] = values
    if not axes:
        raise ValueError(f"nothing to compare: give at least one {flag} KEY=V1,V2,...")
    return axes


def _parse_spec(spec, flag):
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"{flag} {spec!r}: expected KEY=V1,V2,... (like transition_pool=avg,max)")
    if key not in NAMES and key not in OLD_NAMES:
        raise ValueError(f"{flag} {spec!r}: unknown setting {key!r}; choose one of {', '.join(NAMES)}")
    texts = [t.strip() for t in text.split(",") if t.strip()]
    if not texts:
        raise ValueError(f"{flag} {spec!r}: no values for {key!r}")
    try:
        values = [parse_setting(key, t) for t in texts]
    except ValueError as error:
        raise ValueError(f"{flag} {spec!r}: bad value for {key!r}: {error}") from None
    if len(set(map(format_value, values))) != len(values):
        raise ValueError(f"{flag} {spec!r}: a value is listed twice")
    return key, values


def grid(**axes):
    """Every combination of the values: ``grid(transition_pool=["avg", "max"])`` ->
    ``{"transition_pool=avg": {"transition_pool": "avg"}, "transition_pool=max": {...}}``.

    Names join ``key=value`` with spaces, in the order the keys were given.
    """
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or not list(values):
            raise ValueError(f"grid: {key} needs a non-empty list of values, got {values!r}")
    combinations = {}
    for combo in itertools.product(*axes.values()):
        settings = dict(zip(axes, combo))
        combinations[" ".join(f"{k}={format_value(v)}" for k, v in settings.items())] = settings
    return combinations


def variants(vary, shared=()):
    """``{name: settings}`` of a comparison: the grid of the ``--vary`` specs, each with the ``--set`` specs.

    Raises ``ValueError`` for a ``--set`` with several values or a key both varied and set.
    """
    varied = parse_vary(vary)
    fixed = parse_vary(shared, flag="--set") if shared else {}
    for key, values in fixed.items():
        if len(values) != 1:
            raise ValueError(f"--set {key}: give one value (to compare several, use --vary)")
        if key in varied:
            raise ValueError(f"--set {key}: {key!r} is also varied")
    combinations = grid(**varied)
    for settings in combinations.values():
        settings.update({key: values[0] for key, values in fixed.items()})
    return combinations
