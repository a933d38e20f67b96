"""The options of a training run, in groups, each a frozen dataclass documented field by field.

* :class:`Network`: the book's DenseNet (what is trained).
* :class:`Budget`: how much training, and the named recipe it starts from (a profile is a budget).
* :class:`Recipe`: how the weights are optimised (what is computed).
* :class:`Levers`: how fast it is computed, never what (:func:`minidense.hardware.resolve_levers`
  decides every default in one place, probing the hardware once).
* :class:`Parallel`: how the processes of a run started by torchrun work together.

Every field's ``help`` below is its one description: the command line's flags, ``compare``'s keys,
the records and the History's provenance are generated from these fields, with the same names
(:mod:`minidense.settings` holds one of each group and makes the run's key; its docstring says how
a field is added and how the keys of recorded runs stay what they are). This module imports nothing
of the library but its argument checks (:mod:`minidense._checks`).
"""

import dataclasses
import functools
import math
import numbers
import typing

import torch

from minidense._checks import check_positive_int

__all__ = ["Network", "Budget", "Recipe", "Levers", "Parallel", "RECIPES", "SCHEDULES", "PRECISIONS", "POOLS",
           "TRAIN_IMAGES", "TEST_IMAGES", "recipe", "fields_of", "parse_field", "parse_value", "format_value",
           "MAX_TRANSLATE", "precision_of_bf16", "TASKS", "BACKBONES"]

SCHEDULES = (None, "step", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")  # minidense.precision says what each needs
MAX_TRANSLATE = 8  # pixels of the 28x28 image; more moves a garment mostly out of the frame


POOLS = ("avg", "max")  # the pool types of minidense.blocks.transition_block (tested equal)
TASKS = ("garment", "rows")  # minidense.tasks.TASKS (tested equal)
BACKBONES = ("densenet", "resnet")  # minidense.readers.BACKBONES (tested equal)
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000  # the two splits of Fashion-MNIST

_NOT_IMPLIED = object()


def _option(default, help, choices=None, *, parse=None, implied=_NOT_IMPLIED, key=None):
    """A field of an option group. ``help`` is its one description; ``choices`` its allowed values;
    ``parse`` reads its text where the type does not say how. ``implied`` and ``key`` keep the keys of
    recorded runs (:mod:`minidense.settings`): the value runs recorded before the field existed implied
    (the field enters a key only when it differs), and a function from the value to the key entries it
    stands for (for a field that replaced an older one)."""
    metadata = {"help": help, "choices": choices, "parse": parse, "key": key}
    if implied is not _NOT_IMPLIED:
        metadata["implied"] = implied
    return dataclasses.field(default=default, metadata=metadata)


def _positive(text):
    """A positive integer from its text."""
    if not text.strip().isdigit() or int(text) == 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return int(text)


def _blocks(text):
    """``"4-4-4-4"`` -> ``(4, 4, 4, 4)``."""
    parts = text.split("-")
    if not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"expected positive integers joined by '-' (like 4-4-4-4), got {text!r}")
    return tuple(int(part) for part in parts)


def _check_number(name, value, low, high=math.inf, low_open=False, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the weights are optimised. The defaults are d2l's recipe: plain SGD at a constant ``lr``."""

    lr: float = _option(0.1, "learning rate (with a schedule, its peak)")
    momentum: float = _option(0.0, "SGD momentum (0: plain SGD, as d2l)")
    nesterov: bool = _option(False, "Nesterov momentum (needs momentum > 0)")
    weight_decay: float = _option(0.0, "L2 penalty added to the gradient by the optimiser")
    schedule: str | None = _option(None, "learning-rate schedule, stepped every batch: none (constant), "
                                         "step (divide by 10 at 50% and 75%, the paper), cosine, or "
                                         "onecycle (warm up for 30%, then anneal)", SCHEDULES)
    precise_bn: int = _option(0, "training batches that re-estimate the BN statistics before each "
                                 "evaluation (0: off)")
    label_smoothing: float = _option(0.0, "share of the target's probability spread evenly over all "
                                          "classes, in [0, 1)")
    translate: int = _option(0, "shift each training image by up to this many pixels (of the 28x28 "
                                f"image) in each direction, at most {MAX_TRANSLATE}")
    flip: bool = _option(False, "flip each training image left to right with probability 1/2")
    ema_decay: float | None = _option(None, "evaluate an exponential moving average of the weights, its BN "
                                            "statistics recomputed; the decay per step, in (0, 1), is at "
                                            "most this: after n steps it is (1 + n) / (10 + n) until that "
                                            "reaches it (none: the last weights)")
    tta: bool = _option(False, "test-time augmentation: average the predicted probabilities of each test "
                               "image and its mirror image")

    def __post_init__(self):
        _check_number("lr", self.lr, 0, low_open=True)
        _check_number("momentum", self.momentum, 0)
        _check_number("weight_decay", self.weight_decay, 0)
        _check_number("label_smoothing", self.label_smoothing, 0)
        if self.label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}: at 1 the "
                             "target says nothing about the class")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0: Nesterov momentum is a kind of momentum")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(str, SCHEDULES))}, got {self.schedule!r}")
        for name in ("precise_bn", "translate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.translate > MAX_TRANSLATE:
            raise ValueError(f"translate must be at most {MAX_TRANSLATE} pixels of the 28x28 image, "
                             f"got {self.translate}")
        if self.ema_decay is not None:
            _check_number("ema_decay", self.ema_decay, 0, 1, low_open=True, high_open=True)
            if self.precise_bn == 0:
                raise ValueError("ema_decay needs precise_bn > 0: the averaged weights need BN statistics "
                                 "of their own, recomputed over that many training batches")
        for name in ("nesterov", "flip", "tta"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def __str__(self):
        if self == RECIPES["d2l"].replace(lr=self.lr):
            return f"d2l (constant lr {self.lr:g}, plain SGD)"
        parts = [f"{self.schedule or 'constant'} lr {self.lr:g}"]
        if self.momentum:
            parts.append(f"{'Nesterov ' if self.nesterov else ''}momentum {self.momentum:g}")
        if self.weight_decay:
            parts.append(f"weight decay {self.weight_decay:g}")
        if self.precise_bn:
            parts.append(f"BN re-estimated over {self.precise_bn} batches")
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing:g}")
        if self.translate or self.flip:
            parts.append("augmentation (" + ", ".join(
                ([f"shifts up to {self.translate} px"] if self.translate else []) + (["flips"] if self.flip else []))
                + ")")
        if self.ema_decay is not None:
            parts.append(f"EMA of the weights (decay warmed up to {self.ema_decay:g})")
        if self.tta:
            parts.append("flip TTA")
        return ", ".join(parts)

    def replace(self, **changes):
        """A copy with some fields changed (checked like a new recipe)."""
        return dataclasses.replace(self, **changes)

    @property
    def augments(self):
        """Whether the training images are augmented."""
        return bool(self.translate or self.flip)


_SHORT = Recipe(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", precise_bn=20)

RECIPES = {
    # d2l's recipe: plain SGD at a constant learning rate. The full profile keeps it, so that the
    # comparison with d2l's published result stays fair.
    "d2l": Recipe(),
    # For a short budget: an annealed schedule and BN statistics re-estimated before evaluating
    # (the chapter "Training DenseNet" shows why).
    "short": _SHORT,
    # The book's own recipe (the chapter "Training it well"): the short-budget recipe at d2l's peak
    # learning rate, with label smoothing, shifted and flipped training images, an average of the
    # weights and flip test-time augmentation.
    "book": _SHORT.replace(lr=0.1, label_smoothing=0.1, translate=2, flip=True, ema_decay=0.998, tta=True),
}


def recipe(name_or_recipe=None):
    """A :class:`Recipe` from its name in :data:`RECIPES` (``None``: d2l's); a Recipe passes through."""
    if isinstance(name_or_recipe, Recipe):
        return name_or_recipe
    if name_or_recipe is None:
        return RECIPES["d2l"]
    if name_or_recipe not in RECIPES:
        raise ValueError(f"unknown recipe {name_or_recipe!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name_or_recipe]


@dataclasses.dataclass(frozen=True)
class Network:
    """What is trained: the book's DenseNet (the arguments of :func:`minidense.densenet`; the defaults are
    the book's network), or for the rows task a reader of rows (:func:`minidense.readers.row_reader`)
    whose encoder takes the same block settings."""

    task: str = _option("garment", "what the network learns: garment (one class per image) or rows (a row of "
                        "garments read left to right, with CTC)", TASKS, implied="garment")
    backbone: str = _option("densenet", "the encoder of a rows reader: densenet (dense blocks) or resnet "
                            "(residual blocks of about as many parameters)", BACKBONES, implied="densenet")
    max_items: int = _option(5, "the most garments in a row of the rows task", parse=_positive, implied=5)
    transition_pool: str = _option("avg", "pooling in the transition blocks: avg (the paper's) or max", POOLS)
    growth_rate: int = _option(32, "channels each convolution block adds to a dense block's output", parse=_positive)
    convs_per_block: tuple = _option((4, 4, 4, 4), "convolution blocks in each dense block, written 4-4-4-4",
                                     parse=_blocks)

    def __post_init__(self):
        for name, allowed in (("task", TASKS), ("backbone", BACKBONES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        check_positive_int("max_items", self.max_items)
        if self.task == "garment" and (self.backbone, self.max_items) != ("densenet", 5):
            raise ValueError("backbone and max_items are settings of the rows task (task=rows); the garment "
                             "task trains the book's DenseNet")
        if self.transition_pool not in POOLS:
            raise ValueError(f"transition_pool must be one of {', '.join(POOLS)}, got {self.transition_pool!r}")
        check_positive_int("growth_rate", self.growth_rate)
        if not isinstance(self.convs_per_block, tuple) or not self.convs_per_block:
            raise ValueError(f"convs_per_block must be a non-empty tuple, got {self.convs_per_block!r}")
        for convs in self.convs_per_block:
            check_positive_int("every entry of convs_per_block", convs)

    def replace(self, **changes):
        """A copy with some fields changed (checked like a new one)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much training a run gets, and the named recipe it starts from. A profile
    (:func:`minidense.profile`) is a named budget; a run may change any of its fields."""

    num_epochs: int = _option(dataclasses.MISSING, "passes over the training images", parse=_positive)
    batch_size: int = _option(dataclasses.MISSING, "training images per step (under torchrun: the global batch)",
                              parse=_positive)
    num_train: int | None = _option(dataclasses.MISSING, "training images, a fixed class-balanced subset "
                                                         f"(none: all {TRAIN_IMAGES:,})", parse=_positive)
    num_test: int | None = _option(dataclasses.MISSING, f"test images, a fixed class-balanced subset (none: all "
                                                        f"{TEST_IMAGES:,})", parse=_positive)
    resize: int = _option(dataclasses.MISSING, "side in pixels the 28x28 images are resized to", parse=_positive)
    recipe: str = _option(dataclasses.MISSING, "the named recipe the run starts from; a recipe field given "
                                               "beside it changes that field", tuple(RECIPES))

    def __post_init__(self):
        for name in ("num_epochs", "batch_size", "resize"):
            check_positive_int(name, getattr(self, name))
        for name, total in (("num_train", TRAIN_IMAGES), ("num_test", TEST_IMAGES)):
            value = getattr(self, name)
            check_positive_int(name, value, optional=True)
            if value is not None and value > total:
                raise ValueError(f"{name}={value:,} is more than the {total:,} images of the split")
        recipe(self.recipe)  # an unknown name is an error here

    def replace(self, **changes):
        """A copy with some fields changed (checked like a new one)."""
        return dataclasses.replace(self, **changes)

    @property
    def images(self):
        """``(training images, test images)`` the budget reads."""
        return (self.num_train or TRAIN_IMAGES, self.num_test or TEST_IMAGES)


def _precision_key(precision):
    """The key entries of a precision: fp32 and bf16 as the ``bf16`` switch (False, True) that runs recorded
    before fp16 joined hold, so that their keys stay what they were; fp16, which they could not have,
    as ``bf16`` False and ``precision`` fp16."""
    return {"bf16": precision == "bf16", **({"precision": precision} if precision == "fp16" else {})}


@dataclasses.dataclass(frozen=True)
class Levers:
    """How fast training runs, never what it computes. ``None`` means: decided for the device by
    :func:`minidense.hardware.resolve_levers`."""

    precision: str | None = _option(None, "arithmetic of the forward and backward passes: fp32, bf16 under "
                                          "autocast, or fp16 under autocast with a gradient scaler (default: "
                                          "what the device computes natively: on CUDA bf16 from compute "
                                          "capability 8.0, fp16 from 7.0, else fp32; on a CPU bf16 where it "
                                          "has native bf16 and it measures faster, else fp32)", PRECISIONS,
                                    key=_precision_key)
    channels_last: bool | None = _option(None, "channels-last memory format (default: probed on this "
                                               "machine in the precision chosen)")
    compile: bool = _option(False, "torch.compile the network (refused under the smoke profile: it "
                                   "compiles for minutes before the first step)")
    eval_batch_size: int | None = _option(None, "evaluation batch (default: on a GPU 4x the training batch, "
                                                "at most 1,024; on a CPU the training batch)")
    inplace_relu: bool = _option(True, "every ReLU right after a BatchNorm works in place while training")
    host_sync: bool = _option(False, "read the loss and accuracy back to the host after every step, as d2l "
                                     "does (default: they accumulate on the device)")
    keep_freed_memory: bool | None = _option(None, "malloc keeps freed memory for the next step instead of "
                                                   "the kernel zeroing it again (default: on a CPU; Linux "
                                                   "with glibc)")

    def __post_init__(self):
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or None: decided for the "
                             f"device), got {self.precision!r}")
        check_positive_int("eval_batch_size", self.eval_batch_size, optional=True)

    def replace(self, **changes):
        if "bf16" in changes:
            changes["precision"] = precision_of_bf16(changes.pop("bf16"), changes.get("precision"))
        return dataclasses.replace(self, **changes)

    @property
    def bf16(self):
        """Whether the precision is bf16 (``None`` while undecided): the lever's name before fp16 joined."""
        return None if self.precision is None else self.precision == "bf16"

    @property
    def resolved(self):
        """Whether every default is decided (:func:`minidense.hardware.resolve_levers` decides them)."""
        return None not in (self.precision, self.channels_last, self.keep_freed_memory)

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format


def precision_of_bf16(bf16, precision=None):
    """``precision`` as the old ``bf16`` switch says: True -> bf16, False -> fp32 (None: ``precision``)."""
    if bf16 is None:
        return precision
    if not isinstance(bf16, bool):
        raise ValueError(f"bf16 must be True or False, got {bf16!r}")
    if precision is not None and precision != ("bf16" if bf16 else "fp32"):
        raise ValueError(f"bf16={bf16} contradicts precision={precision!r}: give one of them")
    return "bf16" if bf16 else "fp32"


def _accepting_bf16(init):
    """``Levers(bf16=True)`` and ``Levers(bf16=False)``, the spelling before fp16 joined, still work:
    they mean ``precision="bf16"`` and ``precision="fp32"``."""
    @functools.wraps(init)
    def __init__(self, *args, bf16=None, **kwargs):
        if bf16 is not None:
            kwargs["precision"] = precision_of_bf16(bf16, kwargs.get("precision"))
        init(self, *args, **kwargs)
    return __init__


Levers.__init__ = _accepting_bf16(Levers.__init__)


@dataclasses.dataclass(frozen=True)
class Parallel:
    """How the processes of a run started by torchrun work together (:mod:`minidense.distributed`).

    In a single process there is nothing to share, and these fields change nothing. They are not
    ``compare`` keys: ``compare`` runs one process per run.
    """

    sync_bn: bool = _option(False, "under torchrun, every BatchNorm normalises with the statistics of the "
                                   "whole global batch, all-reduced in each layer (SyncBatchNorm; CUDA only) "
                                   "(default: each process with those of its own share of the batch)")

    def __post_init__(self):
        if not isinstance(self.sync_bn, bool):
            raise ValueError(f"sync_bn must be True or False, got {self.sync_bn!r}")


def fields_of(cls):
    """``{name: dataclasses.Field}`` of an option group."""
    return {f.name: f for f in dataclasses.fields(cls)}


def _base_type(field):
    """The field's type without ``| None``: bool, int, float or str."""
    kinds = [t for t in typing.get_args(field.type) or (field.type,) if t is not type(None)]
    return kinds[0]


def format_value(value):
    """A setting as flags, keys and records write it: ``(4, 4)`` -> ``"4-4"``, ``None`` -> ``"none"``."""
    if isinstance(value, (tuple, list)):
        return "-".join(str(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def parse_field(field, text):
    """A field's value from its text on the command line (``none`` for ``None``, ``true``/``false``,
    ``4-4-4-4``): the inverse of :func:`format_value`."""
    optional = type(None) in typing.get_args(field.type)
    if field.metadata.get("parse") is not None and not (optional and text.lower() == "none"):
        return field.metadata["parse"](text)
    return parse_value(_base_type(field), text, optional, field.metadata.get("choices"))


def parse_value(kind, text, optional=False, choices=None):
    """A value of type ``kind`` (bool, int, float or str) from its text; ``none`` is None if ``optional``."""
    if optional and text.lower() == "none":
        return None
    if choices is not None:
        value = None if text == "none" else text
        if value not in choices:
            raise ValueError(f"expected one of {', '.join('none' if c is None else c for c in choices)}, "
                             f"got {text!r}")
        return value
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
