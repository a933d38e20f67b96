"""How much memory a forward pass leaves behind for the backward pass, measured on any device."""

import time

import torch

__all__ = ["saved_activation_bytes", "paired_step_times"]


def saved_activation_bytes(net, X):
    """Bytes of activations that one forward pass of ``net`` on ``X`` keeps for the backward pass.

    Counts the tensors autograd saves (through ``torch.autograd.graph.saved_tensors_hooks``) and the
    inputs that memory-efficient dense layers keep to recompute their concatenation in the backward
    pass (``torch.utils.checkpoint`` holds those itself, outside the hooks). Each storage counts once,
    however many tensors view it; parameters are not activations and do not count. This is what a
    GPU's ``torch.cuda.max_memory_allocated`` grows by during the forward pass, less temporaries.

    Args:
        net: a network in training mode (eval mode saves the same for backward, but BN differs).
        X: an input batch, e.g. ``(N, C, H, W)``.

    Returns:
        ``(bytes, output)``: the count and ``net(X)``.
    """
    parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()

    def pack(tensor):
        keep(tensor)
        return tensor

    def checkpointed_inputs(module, args):
        # Recent torch versions also save a checkpoint's inputs through autograd (seen by `pack`);
        # counting them here too keeps the number right where they do not. Storages count once.
        if torch.is_grad_enabled():
            for tensor in args[0]:
                keep(tensor)

    from minidense.models import _DenseLayer

    hooks = [m.register_forward_pre_hook(checkpointed_inputs) for m in net.modules()
             if isinstance(m, _DenseLayer) and m.memory_efficient]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = net(X)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(storages.values()), output


def paired_step_times(net, X, num_pairs=6):
    """Seconds of one training step of ``net`` on ``X`` without and with ``memory_efficient``, in pairs.

    A step is a forward pass, ``.sum()`` of the output and a backward pass. One untimed step in each
    mode warms up first. Then each pair times both modes back to back, the naive mode first in even
    pairs and second in odd ones, so that a busy spell of the machine does not fall on one mode only.
    Leaves ``net.memory_efficient`` as it found it.

    Args:
        net: a paper-family network (:class:`minidense.DenseNet`), e.g. ``minidense.cifar_densenet(40, 12)``.
        X: an input batch ``(N, C, H, W)``.
        num_pairs: how many pairs to time, at least 2 (an interval needs two).

    Returns:
        ``{False: [seconds, ...], True: [seconds, ...]}``: ``num_pairs`` steps per mode; entry ``i`` of
        both lists is pair ``i``.
    """
    if not isinstance(num_pairs, int) or num_pairs < 2:
        raise ValueError(f"num_pairs must be an integer of at least 2, got {num_pairs!r}")

    def step_seconds(memory_efficient):
        net.memory_efficient = memory_efficient
        start = time.perf_counter()
        net(X).sum().backward()
        return time.perf_counter() - start

    before = net.memory_efficient
    try:
        for memory_efficient in (False, True):
            step_seconds(memory_efficient)
        seconds = {False: [], True: []}
        for i in range(num_pairs):
            for memory_efficient in ((False, True) if i % 2 == 0 else (True, False)):
                seconds[memory_efficient].append(step_seconds(memory_efficient))
    finally:
        net.memory_efficient = before
    return seconds
