"""The precision a network trains in: fp32, bf16 or fp16, chosen per device, and what each one needs.

Under autocast the convolutions and matrix products run in the lower precision and the rest (the
loss, BatchNorm's statistics, the weights themselves) stays in fp32. bf16 keeps fp32's range, so
autocast is all it needs. fp16 has five bits of exponent: gradients smaller than about 6e-8 become
0. So under fp16 the loss is multiplied by a large scale before the backward pass and the
gradients divided by it before the step (:class:`torch.amp.GradScaler`); a step whose gradients
overflowed to inf or NaN is skipped and the scale halved, and after 2,000 good steps it doubles.

Which precision pays is a property of the hardware (:func:`minidense.hardware.default_precision`
decides it for a device). On CUDA it follows from the GPU's compute capability alone
(:func:`cuda_precision`): bf16 where the GPU computes it natively (8.0 and up: A100, H100, RTX 30xx
and later), fp16 where it has fp16 tensor cores but no bf16 ones (7.x: V100, and the T4 of Colab's
free tier), fp32 below. ``torch.cuda.is_bf16_supported()`` is not asked: by default it counts
emulated bf16 and says yes on a T4, where bf16 runs far slower than fp16. fp16 runs on a CPU too
(a choice, never the default there).
"""

import contextlib

import torch

from minidense.options import PRECISIONS

__all__ = ["PRECISIONS", "DTYPES", "check_precision", "cuda_precision", "autocast", "grad_scaler",
           "backward_and_step"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16 = (8, 0)  # compute capability from which a GPU computes bf16 natively (Ampere)
FP16_TENSOR_CORES = (7, 0)  # compute capability from which a GPU has fp16 tensor cores (Volta)


def check_precision(precision):
    """``precision`` itself if it is one of :data:`PRECISIONS`, else a ``ValueError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def cuda_precision(capability):
    """The precision that pays on a GPU of compute capability ``capability``, a ``(major, minor)`` pair.

    ``(8, 0)`` and up (native bf16) -> ``"bf16"``; ``(7, x)`` (fp16 tensor cores) -> ``"fp16"``;
    below -> ``"fp32"``. A T4 is ``(7, 5)``, an A100 ``(8, 0)``, a P100 ``(6, 0)``.
    """
    capability = tuple(capability)
    if capability >= NATIVE_BF16:
        return "bf16"
    if capability >= FP16_TENSOR_CORES:
        return "fp16"
    return "fp32"


def autocast(device, precision):
    """The context a forward pass in ``precision`` runs under on ``device`` (nothing for fp32)."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(device, precision):
    """A fresh :class:`torch.amp.GradScaler` for ``device`` under fp16; ``None`` under fp32 and bf16,
    whose range needs no scaling."""
    if check_precision(precision) != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def backward_and_step(loss, optimizer, scaler=None):
    """The gradients of ``loss`` (the old ones cleared first), then ``optimizer.step()``; through
    ``scaler`` when one is given (fp16).

    With a scaler the loss is scaled up before the backward pass and the gradients unscaled before
    the step; a step whose gradients hold inf or NaN is skipped and the scale backed off.

    Returns:
        Whether the step was skipped: always ``False`` without a scaler. With one, the scale is read
        back to the host (the scaler itself reads whether the gradients overflowed on every step).
    """
    optimizer.zero_grad(set_to_none=True)  # pragma: no mutate (zeros instead of None: the same step)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return False
    scale = scaler.get_scale()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() < scale
