"""fastnerf: fused kernels and learned renderers for neural radiance fields.

Importing this package compiles nothing and needs no GPU: the native library
(``fastnerf._C``) is loaded on first use of a C++/CUDA backend, Triton kernels on first use
of the Triton backend.
"""

__version__ = "0.1.0"

from . import backends, ops  # noqa: E402,F401


def __getattr__(name):
    # Heavier layers load on first touch, so `import fastnerf` stays light.
    if name == "render":
        from .rendering import render

        return render
    if name in ("cameras", "data", "metrics", "fields", "models", "train"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastnerf' has no attribute {name!r}")
