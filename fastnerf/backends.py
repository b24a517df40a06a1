"""Which kernels run an op: the backend registry.

Backends:
  "torch"   the PyTorch reference (fastnerf.reference); always available, differentiable.
  "cpp"     C++ CPU kernels in fastnerf._C.
  "cuda"    CUDA kernels in fastnerf._C, when it was built with CUDA and a GPU is present.
  "triton"  Triton kernels (fastnerf.kernels) on a GPU; on the CPU only under TRITON_INTERPRET=1,
            which the tests use. Never picked automatically on the CPU.

`backend=None` picks the fastest available for the tensors' device; the environment
variable FASTNERF_BACKEND overrides that default. Asking for an unavailable backend raises.
"""

import functools
import importlib.util
import os

import torch

from . import _native

NAMES = ("torch", "cpp", "cuda", "triton")
# Fastest first, per device type.
_PREFERENCE = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpp", "torch")}


@functools.lru_cache(maxsize=None)
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _usable(name: str, device: torch.device) -> bool:
    if name == "torch":
        return True
    if name == "cpp":
        return device.type == "cpu" and _native.available()
    if name == "cuda":
        return device.type == "cuda" and _native.built_with_cuda() and torch.cuda.is_available()
    if name == "triton":
        if not _triton_importable():
            return False
        if device.type == "cuda":
            return torch.cuda.is_available()
        return device.type == "cpu" and triton_interpreted()
    return False


def available(device="cpu") -> list:
    """The backends usable for tensors on `device`, fastest first."""
    device = torch.device(device)
    order = _PREFERENCE.get(device.type, ("torch",))
    names = [name for name in order if _usable(name, device)]
    names += [name for name in NAMES if name not in names and _usable(name, device)]
    return names


def select(device, backend=None) -> str:
    """The backend to run on `device`: `backend` if given, else FASTNERF_BACKEND, else the fastest."""
    device = torch.device(device)
    requested = backend if backend is not None else os.environ.get("FASTNERF_BACKEND") or None
    return _select(device, requested, backend is not None)


# A constant to torch.compile: the choice depends only on the machine, so it never breaks a graph.
@torch.compiler.assume_constant_result
def _select(device: torch.device, requested, explicit: bool) -> str:
    usable = available(device)
    if requested is None:
        automatic = [name for name in usable if name in _PREFERENCE.get(device.type, ("torch",))]
        return automatic[0] if automatic else "torch"
    if requested not in NAMES:
        raise ValueError(f"backend must be one of {NAMES} or None, got {requested!r}")
    if requested not in usable:
        source = "backend" if explicit else "FASTNERF_BACKEND"
        why = ""
        if requested in ("cpp", "cuda") and _native.load_error():
            why = f" ({_native.load_error()})"
        raise ValueError(
            f"{source}={requested!r} is not available for tensors on {device}{why}; "
            f"available: {usable}"
        )
    return requested
