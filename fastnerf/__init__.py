"""fastnerf: fused kernels and learned renderers for neural radiance fields.

Importing this package compiles nothing and needs no GPU: the native library
(``fastnerf._C``) is loaded on first use of a C++/CUDA backend, Triton kernels on first use
of the Triton backend.
"""

__version__ = "0.1.0"

from . import backends, ops  # noqa: E402,F401

LAZY_MODULES = ("cameras", "data", "metrics", "fields", "models", "train", "runs")
__all__ = ["__version__", "backends", "ops", "render", *LAZY_MODULES]


def __dir__():
    return sorted(set(globals()) | set(__all__))


def __getattr__(name):
    # Heavier layers load on first touch, so `import fastnerf` stays light.
    if name == "render":
        from .rendering import render

        return render
    if name in LAZY_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastnerf' has no attribute {name!r}")
