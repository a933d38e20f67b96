"""minidense: the library of the minidense book, DenseNet built up step by step.

The chapters import everything from here: the book's layers and network, the data,
the profiles and the training loop.
"""

from minidense.blocks import DenseBlock, conv_block, transition_block
from minidense.data import CLASS_NAMES, load_fashion_mnist
from minidense.hardware import device_report
from minidense.history import History
from minidense.models import densenet
from minidense.profiles import Profile, profile
from minidense.training import evaluate_accuracy, train
from minidense import inspect, plot  # submodules: minidense.inspect.layer_table, minidense.plot.connectivity

__version__ = "0.1.0"

__all__ = [
    "conv_block", "DenseBlock", "transition_block", "densenet",
    "load_fashion_mnist", "CLASS_NAMES", "profile", "Profile",
    "train", "evaluate_accuracy", "History", "device_report",
]
