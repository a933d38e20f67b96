"""Every setting of a training run in one typed object, and the run's key.

A run's settings fall in option groups (:mod:`minidense.options`), each a frozen dataclass whose
fields are documented once:

* :class:`~minidense.options.Network`: the book's DenseNet (``transition_pool``, ``growth_rate``,
  ``convs_per_block``);
* :class:`~minidense.options.Budget`: how much training (``num_epochs``, ``batch_size``,
  ``num_train``, ``num_test``, ``resize``) and the named ``recipe`` it starts from; a profile is a
  named budget;
* :class:`~minidense.options.Recipe`: how the weights are optimised;
* :class:`~minidense.options.Levers`: how fast, never what is computed (resolved for the machine
  before a run is keyed: the key names what the run computed with).

:class:`Settings` holds one of each. ``python -m minidense train``'s flags, ``compare``'s
``--vary``/``--set`` keys, a record's ``settings`` column and the run's key are all generated from
these fields, with the same names. The seed stays beside the settings: ``compare`` gives every variant
the same seeds.

**Adding a field** is one line in its group: ``name: type = _option(default, "what it is", ...)``.
The flag ``--name``, the ``compare`` key ``name`` and the record's column follow.

**Keys of recorded runs never change.** A run's key is a digest of ``{"seed": seed, name: text, ...}``
over every field (texts as :func:`~minidense.options.format_value` writes them), computed in
:meth:`Settings.key` only, so ``compare`` skips every run already recorded with the same settings.
A new field would enter every key and make ``compare`` retrain every recorded run, so a field added
later says, in ``_option(..., implied=VALUE)``, the value that runs recorded before it existed
implied; it enters the key only when its value differs. (A task field ``task`` defaulting to
``"garment"`` is declared with ``implied="garment"``: every garment run keeps its key.) A field that
replaces an older one keeps the old spelling in the key with ``_option(..., key=FUNCTION)``, a
function from its value to the key entries it stands for (``precision="bf16"`` is ``{"bf16": True}``,
as runs recorded before fp16 joined spell it). ``tests/book/test_record_keys.py`` re-derives the key
of every record under ``book/results/`` and reruns each recorded command without training anything.
"""

import dataclasses
import hashlib
import json

from minidense.options import (
    RECIPES,
    Budget,
    Levers,
    Network,
    Recipe,
    fields_of,
    format_value,
    parse_field,
    parse_value,
)
from minidense.options import recipe as get_recipe

__all__ = ["Settings", "GROUPS", "NAMES", "OLD_NAMES", "parse_setting"]

# The option groups of a run, in the order flags, keys and records list their fields.
GROUPS = {"network": Network, "budget": Budget, "recipe": Recipe, "levers": Levers}
# Every setting's name (names are unique across the groups), and its group.
NAMES = {name: group for group, cls in GROUPS.items() for name in fields_of(cls)}
# Names a setting had before, still accepted: the switch bf16 (true: precision bf16, false: fp32).
OLD_NAMES = {"bf16": "levers"}


def parse_setting(name, text):
    """The value of the setting ``name`` from its text, as ``compare --vary name=text`` writes it."""
    if name in OLD_NAMES:
        return parse_value(bool, text)
    if name not in NAMES:
        raise ValueError(f"unknown setting {name!r}; choose one of {', '.join(NAMES)}")
    return parse_field(fields_of(GROUPS[NAMES[name]])[name], text)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings of one run: its network, budget, recipe and levers."""

    network: Network
    budget: Budget
    recipe: Recipe
    levers: Levers

    @classmethod
    def of_profile(cls, profile, levers=None):
        """The book's network under ``profile``'s budget and recipe, with ``levers`` (default: all undecided)."""
        budget = Budget(**{name: getattr(profile, name) for name in fields_of(Budget)})
        return cls(Network(), budget, RECIPES[budget.recipe], Levers() if levers is None else levers)

    def replace(self, **changes):
        """A copy with some settings changed, by name; ``recipe=NAME`` starts from that recipe, and a
        recipe field given beside it changes that field. Unknown names and invalid values are a ``ValueError``."""
        group_of = {**NAMES, **OLD_NAMES}
        unknown = [name for name in changes if name not in group_of]
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; choose from {', '.join(NAMES)}")
        groups = {group: getattr(self, group) for group in GROUPS}
        if "recipe" in changes:
            groups["recipe"] = get_recipe(changes["recipe"])
        for group in GROUPS:
            mine = {name: value for name, value in changes.items() if group_of[name] == group}
            if mine:
                groups[group] = groups[group].replace(**mine)
        return Settings(**groups)

    def flat(self):
        """``{name: value}`` of every setting, group by group."""
        return {name: getattr(getattr(self, group), name) for name, group in NAMES.items()}

    def texts(self):
        """``{name: text}`` of every setting, as a record's ``settings`` column holds them."""
        return {name: format_value(value) for name, value in self.flat().items()}

    @classmethod
    def from_texts(cls, texts):
        """The settings a record's ``settings`` column (``{name: text}``) holds, old names included."""
        values = {name: parse_setting(name, text) for name, text in texts.items()}
        group_of = {**NAMES, **OLD_NAMES}
        return cls(**{group: group_cls(**{n: v for n, v in values.items() if group_of[n] == group})
                      for group, group_cls in GROUPS.items()})

    def key(self, seed):
        """The run's identity: a digest of every setting and the seed (the same key, the same result).

        The one place a key is made; see the module's docstring for how old records keep theirs.
        """
        entries = {"seed": seed}
        for group, cls in GROUPS.items():
            for name, field in fields_of(cls).items():
                value = getattr(getattr(self, group), name)
                if "implied" in field.metadata and value == field.metadata["implied"]:
                    continue  # what every run recorded before the field existed had: not in their keys
                spelled = field.metadata["key"](value) if field.metadata.get("key") else {name: value}
                entries.update({k: format_value(v) for k, v in spelled.items()})
        text = json.dumps(entries, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
