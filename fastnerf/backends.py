"""Which kernels run an op: the backend registry.

Backends:
  "torch"   the PyTorch reference (fastnerf.reference); always available, differentiable.
  "cpp"     C++ CPU kernels in fastnerf._C.
  "cuda"    CUDA kernels in fastnerf._C, when it was built with CUDA and a GPU is present.
  "triton"  Triton kernels (fastnerf.kernels) on a GPU; on the CPU only under TRITON_INTERPRET=1,
            which the tests use. Never picked automatically on the CPU.

`backend=None` picks the fastest available for the tensors' device (warning once when that is
slower than it should be because fastnerf._C failed to load); the environment variable
FASTNERF_BACKEND overrides that default. Asking for an unavailable backend raises, saying why:
`unavailable_reason(name, device)`, which `fastnerf info` prints for every backend.
"""

import functools
import importlib.util
import os
import warnings

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


def no_cuda_reason():
    """None if PyTorch sees a CUDA GPU, else why not."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"no CUDA device: this PyTorch ({torch.__version__}) is a CPU-only build"
    return f"no CUDA device visible to PyTorch {torch.__version__} (CUDA {torch.version.cuda}): no GPU, driver or CUDA_VISIBLE_DEVICES"


def unavailable_reason(name: str, device="cpu"):
    """None if backend `name` can run ops on tensors on `device`, else why not, in words a user can
    act on. `fastnerf info` prints these, and asking for an unavailable backend raises with one."""
    device = torch.device(device)
    if name not in NAMES:
        return f"unknown backend; the backends are {NAMES}"
    if device.type == "cuda" and no_cuda_reason():
        return no_cuda_reason()
    if name == "torch":
        return None
    if name in ("cpp", "cuda"):
        if name == "cpp" and device.type != "cpu":
            return "the C++ backend runs on the CPU only"
        if name == "cuda" and device.type != "cuda":
            return "the CUDA backend runs on CUDA devices only"
        if _native.load_error():
            return _native.load_error()
        if name == "cuda" and not _native.built_with_cuda():
            return (
                "fastnerf._C was built without CUDA (at build time there was no nvcc, torch was a CPU "
                "build, or FASTNERF_NO_CUDA=1); rebuild it where nvcc and a CUDA PyTorch are installed"
            )
        return None
    # triton
    if not _triton_importable():
        return "triton is not installed (pip install triton)"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if not triton_interpreted():
            return "Triton runs on the CPU only under its interpreter (TRITON_INTERPRET=1, slow: for tests)"
        return None
    return f"Triton does not run on {device.type} tensors"


def _usable(name: str, device: torch.device) -> bool:
    return unavailable_reason(name, device) is None


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
        chosen = automatic[0] if automatic else "torch"
        if _native.load_error() and device.type in ("cpu", "cuda"):
            _warn_fallback_once(chosen)
        return chosen
    if requested not in NAMES:
        raise ValueError(f"backend must be one of {NAMES} or None, got {requested!r}")
    if requested not in usable:
        source = "backend" if explicit else "FASTNERF_BACKEND"
        raise ValueError(
            f"{source}={requested!r} is not available for tensors on {device} "
            f"({unavailable_reason(requested, device)}); available: {usable}"
        )
    return requested


_fallback_warned = False


def _warn_fallback_once(chosen: str) -> None:
    # The native library failing to load must not pass unnoticed: every op would silently run
    # the PyTorch reference (or Triton), many times slower. Once per process is enough.
    global _fallback_warned
    if _fallback_warned:
        return
    _fallback_warned = True
    warnings.warn(
        f"fastnerf ops run on the {chosen!r} backend, not the native kernels: {_native.load_error()}. "
        "`fastnerf info` shows what is available.",
        RuntimeWarning,
        stacklevel=3,
    )
