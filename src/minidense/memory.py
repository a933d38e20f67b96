"""How much memory a forward pass leaves behind for the backward pass, measured on any device."""

import torch

__all__ = ["saved_activation_bytes"]


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
