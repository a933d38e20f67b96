"""minidense: the library of the minidense book, DenseNet built up step by step.

The chapters import everything from here: the book's layers and network, the data,
the profiles and the training loop.
"""

from minidense.blocks import DenseBlock, conv_block, transition_block
from minidense.data import CLASS_NAMES, load_fashion_mnist
from minidense.hardware import device_report
from minidense.history import History
from minidense.models import densenet
from minidense.models import (DenseNet, cifar_densenet, densenet121, densenet161, densenet169, densenet201,
                              densenet264, load_torchvision_state_dict)
from minidense.reuse import feature_reuse
from minidense.shapes import output_shapes
from minidense.profiles import Profile, profile
from minidense.training import evaluate_accuracy, train
from minidense import inspect, plot  # submodules: minidense.inspect.layer_table, minidense.plot.connectivity

__version__ = "0.1.0"

__all__ = [
    "conv_block", "DenseBlock", "transition_block", "densenet",
    "load_fashion_mnist", "CLASS_NAMES", "profile", "Profile",
    "train", "evaluate_accuracy", "History", "device_report",
]
__all__ += ["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
            "cifar_densenet", "load_torchvision_state_dict", "feature_reuse", "output_shapes"]
