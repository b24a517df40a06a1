"""Input checks shared by the public ops. Each error names the argument and what was expected.

Checks run before any kernel. Data-dependent checks (packed_info ranges) synchronise with the
device once per call and are skipped while torch.compile traces.
"""

import numpy as np
import torch

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def tensor(value, name: str, *, dims: int, dtypes=None, device=None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimension(s), got shape {tuple(value.shape)}")
    if dtypes is not None and value.dtype not in dtypes:
        names = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must be {names}, got {str(value.dtype).replace('torch.', '')}")
    if device is not None and value.device != device:
        raise ValueError(f"{name} must be on {device} like the other inputs, got {value.device}")
    return value


def same_dtype(reference: torch.Tensor, reference_name: str, **others) -> None:
    for name, value in others.items():
        if value.dtype != reference.dtype:
            raise ValueError(
                f"{name} must have the dtype of {reference_name} ({reference.dtype}), got {value.dtype}"
            )


def size(value: torch.Tensor, name: str, dim: int, expected: int, what: str) -> None:
    if value.shape[dim] != expected:
        raise ValueError(
            f"{name}.shape[{dim}] must be {expected} ({what}), got shape {tuple(value.shape)}"
        )


def packed_info(info: torch.Tensor, n_samples: int, *, device) -> None:
    """packed_info [N, 2] int: counts >= 0, starts >= 0, start + count <= S, ranges disjoint."""
    tensor(info, "packed_info", dims=2, dtypes=INDEX_DTYPES, device=device)
    size(info, "packed_info", 1, 2, "(start, count) per ray")
    if info.shape[0] == 0 or _compiling():
        return
    # On the CPU, numpy: a handful of single-threaded passes. Small torch ops would each enter
    # a thread pool, which costs milliseconds apiece when the cores are busy with other work.
    # On a GPU, the flags are gathered and read back in one device sync.
    on_cpu = info.device.type == "cpu"
    table = info.numpy().astype(np.int64) if on_cpu else info.long()
    starts, counts = table[:, 0], table[:, 1]
    ends = starts + counts
    flags = [(counts < 0).any(), (starts < 0).any(), (ends > n_samples).any()]
    # Disjoint: among non-empty rays sorted by start, each must end before the next begins.
    nonempty = counts > 0
    s, e = starts[nonempty], ends[nonempty]
    if len(s) > 1:
        if not bool((s[1:] >= s[:-1]).all()):
            order = s.argsort()
            s, e = s[order], e[order]
        flags.append((s[1:] < e[:-1]).any())
    flags = [bool(flag) for flag in flags] if on_cpu else torch.stack(flags).tolist()
    messages = ("packed_info has a negative count (column 1)", "packed_info has a negative start (column 0)",
                f"packed_info has a ray whose samples run past the {n_samples} samples given",
                "packed_info has rays whose sample ranges overlap")
    for flag, message in zip(flags, messages):
        if flag:
            raise ValueError(message)


def positive_float(value, name: str) -> float:
    """A finite number > 0 (a Python number or a one-element tensor), as a float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {type(value).__name__}")
    value = float(value)
    if not (0.0 < value < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def aabb(value, name: str, *, device) -> torch.Tensor:
    """An axis-aligned box [6] float32 (xmin, ymin, zmin, xmax, ymax, zmax), finite, min < max.

    A list or tuple of six numbers is accepted and moved to `device`. The value check
    synchronises with the device once and is skipped while torch.compile traces.
    """
    if isinstance(value, (list, tuple)):
        value = torch.tensor([float(v) for v in value], dtype=torch.float32, device=device)
    tensor(value, name, dims=1, dtypes=(torch.float32,), device=device)
    size(value, name, 0, 6, "(xmin, ymin, zmin, xmax, ymax, zmax)")
    if not _compiling():
        lo, hi = value[:3], value[3:]
        if not bool((torch.isfinite(value).all() & (lo < hi).all()).item()):
            raise ValueError(f"{name} must be finite with min < max on every axis, got {value.tolist()}")
    return value


def positive_int(value, name: str, *, minimum: int = 1, maximum: int = None) -> int:
    """An int (bools rejected) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be >= {minimum}{upper}, got {value}")
    return value


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0
