"""Lazy loading of the native library fastnerf._C (C++ CPU kernels, CUDA kernels if built).

Nothing here runs at `import fastnerf`. Op modules register their fake kernels and autograd
formulas for native ops with `@on_load`; they run once, right after the library loads.
"""

import functools
import importlib

_hooks = []
_loaded = False


def on_load(hook):
    """Run `hook()` once the native library is loaded (now, if it already is)."""
    _hooks.append(hook)
    if _loaded:
        hook()
    return hook


@functools.lru_cache(maxsize=None)
def load_error():
    """None if fastnerf._C imports, else why not (a message for the user)."""
    global _loaded
    try:
        importlib.import_module("fastnerf._C")
    except ImportError as error:
        return (
            f"fastnerf._C could not be imported ({error}); build it with "
            "`pip install --no-build-isolation -e .` from the repository root"
        )
    _loaded = True
    for hook in _hooks:
        hook()
    return None


def available() -> bool:
    return load_error() is None


def built_with_cuda() -> bool:
    if not available():
        return False
    import torch

    return bool(torch.ops.fastnerf.built_with_cuda())
