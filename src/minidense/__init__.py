"""minidense: the library of the minidense book, DenseNet built up step by step.

The chapters import everything from here: the book's layers and network, the paper's family,
the data, the profiles and the training loop; figures and tables live in the submodules
``minidense.plot`` and ``minidense.tables``.
"""

from minidense import options, tables
from minidense.blocks import DenseBlock, conv_block, transition_block
from minidense.data import CLASS_NAMES, load_fashion_mnist
from minidense.experiments import compare, epochs_long
from minidense.grids import grid
from minidense.hardware import device_report, resolve_levers
from minidense.history import History
from minidense.models import (
    DenseNet,
    cifar_densenet,
    densenet,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    densenet264,
    load_torchvision_state_dict,
)
from minidense.options import Levers, Recipe, recipe
from minidense.profiles import Profile, profile
from minidense.readings import by_evaluation, largest_fall, largest_falls
from minidense.results import how_recorded, recorded
from minidense.reuse import feature_reuse
from minidense.settings import Settings
from minidense.stats import format_summary, summarize
from minidense.tables import count_parameters, layer_table, output_shapes
from minidense.training import evaluate_accuracy, train
from minidense.verdicts import read_differences, verdict

__version__ = "0.1.0"

__all__ = [
    "conv_block", "DenseBlock", "transition_block", "densenet",
    "DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
    "cifar_densenet", "load_torchvision_state_dict",
    "load_fashion_mnist", "CLASS_NAMES", "profile", "Profile",
    "train", "evaluate_accuracy", "History", "device_report",
    "feature_reuse", "output_shapes", "count_parameters", "layer_table", "tables", "plot", "recorded",
    "how_recorded", "compare", "summarize", "format_summary", "grid", "epochs_long",
    "verdict", "read_differences",
    "by_evaluation", "largest_fall", "largest_falls",
    "Recipe", "Levers", "recipe", "resolve_levers", "options", "Settings",
]


def __getattr__(name):
    """``minidense.plot`` is imported on first use: ``import minidense`` loads no matplotlib."""
    if name == "plot":
        import importlib

        return importlib.import_module("minidense.plot")
    raise AttributeError(f"module 'minidense' has no attribute {name!r}")
