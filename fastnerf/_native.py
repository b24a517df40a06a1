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
    except (ImportError, OSError, RuntimeError) as error:  # missing, wrong ABI, failed registration
        return (
            f"fastnerf._C could not be loaded ({type(error).__name__}: {error}); build it with "
            "`bash scripts/dev-env.sh` in a checkout, or `pip install --no-build-isolation -e .` "
            "from the repository root"
        )
    _loaded = True
    for hook in _hooks:
        hook()
    return None


def available() -> bool:
    return load_error() is None


def build_info():
    """What fastnerf._C was built with (compiler, torch, flags, CUDA), a dict; None if it is not
    loaded, {} if it was built before it recorded this."""
    if not available():
        return None
    import json

    import torch

    try:
        return json.loads(torch.ops.fastnerf.build_info())
    except (AttributeError, RuntimeError):
        return {}


def built_with_cuda() -> bool:
    if not available():
        return False
    import torch

    return bool(torch.ops.fastnerf.built_with_cuda())
