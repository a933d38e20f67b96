"""The shape after each stage of a network, for shape walks through big networks at no cost."""

from collections import OrderedDict

import torch

__all__ = ["output_shapes"]


def output_shapes(module, X):
    """Run ``X`` through ``module`` and record the output shape of each of its direct children.

    Pass ``X`` on the ``meta`` device (and build ``module`` under ``torch.device("meta")``) to get the
    shapes without computing a single number, however big the network and the input.

    Returns:
        An ``OrderedDict`` from child name to output shape (a tuple), in the order they ran.
    """
    shapes = OrderedDict()
    hooks = [child.register_forward_hook(
                 lambda m, args, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
             for name, child in module.named_children()]
    try:
        with torch.no_grad():
            module(X)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes
