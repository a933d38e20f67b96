"""The device a run trains on, from what a user types: ``cpu``, ``cuda``, ``cuda:1``.

A device that this machine does not have is refused here, before any data is read, with a message
that names the devices it does have, rather than deep inside the first ``.to(device)``.
"""

import torch

from minidense.hardware import default_device, device_name

__all__ = ["resolve_device", "available_devices"]

_OTHER_NAMES = {
    "gpu": "PyTorch calls an NVIDIA GPU 'cuda' (the first one 'cuda:0')",
    "tpu": "a TPU needs torch_xla, which minidense does not use",
    "xla": "a TPU needs torch_xla, which minidense does not use",
}


def available_devices():
    """The devices this machine trains on, named as ``resolve_device`` accepts them, with their
    models: ``["cpu (Intel Xeon ...)", "cuda:0 (Tesla T4)"]``."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append(torch.device("mps"))
    return [f"{d} ({device_name(d)})" if d.type != "mps" else "mps (Apple GPU)" for d in devices]


def _mps_available():
    return torch.backends.mps.is_available()


def _refuse(device, why):
    raise ValueError(f"device {device!r}: {why}. This machine has: {', '.join(available_devices())}")


def resolve_device(device=None):
    """The :class:`torch.device` that ``device`` names, checked against this machine's devices.

    Args:
        device: ``None`` (CUDA when available, else the CPU), a ``torch.device``, or its name:
            ``"cpu"``, ``"cuda"`` (the current GPU), ``"cuda:N"``, ``"mps"``.

    Raises:
        ValueError: a name PyTorch does not know (``"gpu"``, ``"tpu"``, ...), CUDA on a machine
            without it, a GPU index past the last GPU, or a device type minidense does not train on;
            the message names the devices this machine has.
    """
    if device is None:
        return default_device()
    text = str(device).strip()
    if text.lower().split(":")[0] in _OTHER_NAMES:
        _refuse(text, _OTHER_NAMES[text.lower().split(":")[0]])
    try:
        resolved = torch.device(text.lower() if isinstance(device, str) else device)
    except (RuntimeError, ValueError, TypeError):
        _refuse(text, "not a device name; write cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}, but no GPU is visible" if torch.version.cuda \
                else "built without CUDA"
            _refuse(text, f"CUDA is not available here (this PyTorch is {built})")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            _refuse(text, f"there is no GPU {resolved.index}: this machine has {count} GPU"
                          f"{'s' if count != 1 else ''}, numbered from 0")
    elif resolved.type == "mps":
        if not _mps_available():
            _refuse(text, "the Apple GPU (mps) is not available here")
    elif resolved.type != "cpu":
        _refuse(text, f"minidense trains on cpu, cuda or mps, not {resolved.type}")
    return resolved
