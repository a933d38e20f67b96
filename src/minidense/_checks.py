"""Input checks that turn a bad argument into an error in the user's terms."""

import numbers

import torch


def check_positive_int(name, value, optional=False):
    """Raise ``TypeError`` unless ``value`` is an int (bools are not ints here; ``None`` is allowed if
    ``optional``), ``ValueError`` unless it is > 0: the library's one positive-integer check."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


def check_features(X, channels, where, dtype=None):
    """Raise unless ``X`` is a 4-D floating-point batch ``(N, channels, H, W)`` (of ``dtype``, if given)."""
    if not isinstance(X, torch.Tensor) or X.dim() != 4:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"{where} expects a batch of shape (N, {channels}, H, W), got {shape}")
    if not X.is_floating_point():
        raise ValueError(f"{where} expects floating-point images (float32 in [0, 1]), got {X.dtype}; "
                         "convert uint8 pixels with X.float() / 255")
    if dtype is not None and X.dtype != dtype and not torch.is_autocast_enabled(X.device.type):
        raise ValueError(f"{where} expects {dtype} input, the dtype of its weights, got {X.dtype}; "
                         f"convert with X.to({dtype}) (or the network with net.to({X.dtype}))")
    if X.shape[1] != channels:
        raise ValueError(
            f"{where} expects {channels} input channels, got {X.shape[1]} "
            f"(input of shape {tuple(X.shape)})"
        )


def check_image(X, in_channels, min_size, where, dtype=None):
    """Raise unless ``X`` is ``(N, in_channels, H, W)`` with ``H, W >= min_size`` (and of ``dtype``)."""
    check_features(X, in_channels, where, dtype)
    height, width = X.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(
            f"{where} needs images of at least {min_size}x{min_size} pixels, "
            f"got {height}x{width}: the feature map would shrink to nothing"
        )


def check_state_dict_fits(module, state_dict, source="state dict"):
    """Raise ``ValueError`` naming missing and unexpected keys and mismatched shapes, if any."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(state_dict[k].shape)}"
                  for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
                parts.append(f"{title}: {shown}")
        raise ValueError(f"the {source} does not fit this {type(module).__name__}: " + "; ".join(parts))
