"""Which device training, evaluation and rendering run on: ``--device cpu|cuda|cuda:N``."""

from __future__ import annotations

import torch

from .errors import UserError


def available_devices() -> list[str]:
    """``["cpu", "cuda:0", ...]``: the devices torch can use on this machine."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{index}" for index in range(count)]


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device=None) -> torch.device:
    """``device`` (``None``, a string or a ``torch.device``) checked against this machine.

    Raises:
        UserError: an unknown device name, CUDA on a machine without it, or a GPU index past the
            last one; the message lists the devices there are.
    """
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UserError(f"device: {device!r} is not a device name ({error}); "
                        f"devices here: {', '.join(available_devices())}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise UserError(f"device: {device!r} is not supported (cpu or cuda[:N]); devices here: {', '.join(available_devices())}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"device: {device!r} asked for CUDA, but {why}; devices here: {', '.join(available_devices())}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UserError(f"device: {device!r} does not exist; devices here: {', '.join(available_devices())}")
    return resolved


def synchronize(device) -> None:
    """Wait for the device's queued work, so a clock read after it measures that work."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
