"""Look inside a network: its parameter count, the shape after each stage, a layer-by-layer table.

The chapters call them from the top level: ``minidense.count_parameters``, ``minidense.output_shapes``,
``minidense.layer_table``.
"""

import numbers
from collections import OrderedDict

import torch
from torch import nn

__all__ = ["count_parameters", "output_shapes", "layer_table"]


def count_parameters(module):
    """The number of parameters (weights, biases, BN scales and shifts) of ``module``.

    Buffers such as BN running statistics are not parameters and are not counted.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"count_parameters expects a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters())


def _rows(module, prefix, depth, shapes):
    """``(name, module)`` for every row: children, opened until ``depth`` levels below the network.

    A container that is never called itself (``DenseBlock.net``, whose layers the block calls one by
    one) is not a level: it is opened and its children take its place.
    """
    for name, child in module.named_children():
        full_name = f"{prefix}.{name}" if prefix else name
        has_children = any(True for _ in child.children())
        if has_children and full_name not in shapes:
            yield from _rows(child, full_name, depth, shapes)
        elif has_children and depth > 1:
            yield from _rows(child, full_name, depth - 1, shapes)
        else:
            yield full_name, child


def _shape(output):
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    return type(output).__name__


def _run_recording_shapes(net, X, layers):
    """``net(X)`` in evaluation mode without gradients, recording each of ``layers``' output shape.

    ``layers`` is an iterable of ``(name, module)``; the shapes come back in the order the layers
    ran (a layer called more than once keeps the shape of its last call), with ``net``'s output.
    BN statistics and the training flag are left as they were.
    """
    shapes = OrderedDict()
    hooks = [layer.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, _shape(out)))
             for name, layer in layers]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            output = net(X)
    finally:
        net.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes, output


def output_shapes(module, X):
    """Run ``X`` through ``module`` and record the output shape of each of its direct children.

    Pass ``X`` on the ``meta`` device (and build ``module`` under ``torch.device("meta")``) to get the
    shapes without computing a single number, however big the network and the input.

    Returns:
        An ``OrderedDict`` from child name to output shape (a tuple), in the order they ran.
    """
    return _run_recording_shapes(module, X, module.named_children())[0]


def layer_table(net, input_shape, depth=1):
    """Output shape and parameter count of every layer of ``net`` for one input of ``input_shape``.

    Runs one forward pass on zeros (in evaluation mode, without gradients, so BN statistics and the
    random number generator are left as they were) with forward hooks that record each layer's
    output shape. A layer called more than once shows the shape of its last call.

    Args:
        net: the network, e.g. ``minidense.densenet()``.
        input_shape: the shape of the input batch, e.g. ``(1, 1, 96, 96)``.
        depth: 1 lists the network's direct children (``stem``, ``denseblock1``, ...); 2 opens each
            child that has children of its own (``stem.0``, ``denseblock1.net.0``, ...), and so on.

    Returns:
        A ``pandas.DataFrame`` with columns ``name``, ``type``, ``output shape``, ``parameters``, one
        row per layer and a last row ``total``: the whole network, its output shape and
        :func:`count_parameters` of it.
    """
    import pandas as pd

    if not isinstance(net, nn.Module):
        raise ValueError(f"layer_table expects a torch.nn.Module, got {type(net).__name__}")
    if (not isinstance(input_shape, (tuple, list, torch.Size)) or not input_shape
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in input_shape)):
        raise ValueError(f"input_shape must be a tuple of positive integers such as (1, 1, 96, 96), "
                         f"got {input_shape!r}")
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")

    parameter = next(net.parameters(), None)
    X = torch.zeros(tuple(input_shape), device=parameter.device if parameter is not None else None)
    shapes, output = _run_recording_shapes(
        net, X, ((name, layer) for name, layer in net.named_modules(remove_duplicate=False) if name))

    rows = list(_rows(net, "", depth, shapes))
    records = [{"name": name, "type": type(layer).__name__, "output shape": shapes.get(name, "not called"),
                "parameters": count_parameters(layer)} for name, layer in rows]
    records.append({"name": "total", "type": type(net).__name__, "output shape": _shape(output),
                    "parameters": count_parameters(net)})
    return pd.DataFrame.from_records(records, columns=["name", "type", "output shape", "parameters"])
