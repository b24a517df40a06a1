"""fastnerf.ops.march_rays: fixed-step samples along rays, kept only in occupied grid cells.

Backends: "torch" (fastnerf.reference.march_rays), "cpp" and "cuda" (torch.ops.fastnerf.march_rays
in fastnerf._C), "triton" (torch.ops.fastnerf.march_rays_triton, kernels in
fastnerf.kernels.march_rays). Every backend counts each ray's kept samples first, allocates
exactly that many, then fills them: no sample is ever dropped, and there is no per-ray cap.
The sample count S depends on the data, so the fake kernels return an unbacked size.
"""

from typing import NamedTuple

import torch

from .. import _native, backends
from ..reference import march_rays as reference
from . import _validate


class MarchResult(NamedTuple):
    packed_info: torch.Tensor  # [N, 2] int64 (start, count), rows consecutive
    t_starts: torch.Tensor  # [S] float32
    t_ends: torch.Tensor  # [S] float32


def grid_tensors(grid, *, device):
    """(aabb [6] float32, occupied [Rx, Ry, Rz] bool) from an OccupancyGrid or an (aabb, occupied) pair."""
    if hasattr(grid, "aabb") and hasattr(grid, "occupied"):
        aabb, occupied = grid.aabb, grid.occupied
    elif isinstance(grid, (tuple, list)) and len(grid) == 2:
        aabb, occupied = grid
    else:
        raise ValueError(f"grid must be an OccupancyGrid or an (aabb, occupied) pair, got {type(grid).__name__}")
    aabb = _validate.aabb(aabb, "grid aabb", device=device)
    _validate.tensor(occupied, "grid occupied", dims=3, dtypes=(torch.bool,), device=device)
    if min(occupied.shape) < 1:
        raise ValueError(f"grid occupied must have at least one cell per axis, got shape {tuple(occupied.shape)}")
    return aabb, occupied


def march_rays(
    rays_o: torch.Tensor,  # [N, 3] float32 origins
    rays_d: torch.Tensor,  # [N, 3] float32 directions
    t_near: torch.Tensor,  # [N] float32, finite (e.g. from fastnerf.ops.ray_aabb)
    t_far: torch.Tensor,  # [N] float32, finite; rays with t_far <= t_near get no samples
    grid,  # OccupancyGrid, or (aabb [6] float32, occupied [Rx, Ry, Rz] bool)
    step_size: float,  # > 0
    *,
    offsets: torch.Tensor = None,  # [N] float32 in [0, 1): per-ray start jitter, in steps
    backend: str = None,
) -> MarchResult:
    """March each ray in steps of `step_size` from t0 = t_near + offsets * step_size to t_far.

    Interval m of ray r is [t0 + m step, min(t0 + (m+1) step, t_far)] for m = 0, 1, ... while its
    start < t_far; it is kept iff its midpoint lies in an occupied cell (cell of p:
    floor((p - aabb_min) * R / (aabb_max - aabb_min)); outside the aabb is empty). The exact
    float32 formula and the tie-breaking at cell faces are in fastnerf.reference.march_rays.
    A ray may have at most 2**24 intervals ((t_far - t_near) / step_size).
    Returns (packed_info [N, 2] int64, t_starts [S], t_ends [S]), the layout composite takes.

    Example:
        >>> import torch
        >>> from fastnerf.ops import march_rays, ray_aabb
        >>> aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
        >>> occupied = torch.zeros(2, 2, 2, dtype=torch.bool)
        >>> occupied[:, :, 1] = True                       # the half of the box with z > 0
        >>> rays_o, rays_d = torch.tensor([[0.0, 0, -3]]), torch.tensor([[0.0, 0, 1]])
        >>> t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
        >>> packed_info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, (aabb, occupied), 0.5)
        >>> packed_info.tolist(), t_starts.tolist(), t_ends.tolist()   # the empty half is skipped
        ([[0, 2]], [3.0, 3.5], [3.5, 4.0])
    """
    device = check_rays(rays_o, rays_d, t_near, t_far, offsets)
    step_size = _validate.positive_float(step_size, "step_size")
    aabb, occupied = grid_tensors(grid, device=device)
    _check_values(t_near, t_far, offsets, step_size)
    rays_o, rays_d, t_near, t_far = (x.detach() for x in (rays_o, rays_d, t_near, t_far))
    offsets = None if offsets is None else offsets.detach()

    name = backends.select(device, backend)
    if name == "torch":
        return MarchResult(*reference.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets))
    op = torch.ops.fastnerf.march_rays_triton if name == "triton" else torch.ops.fastnerf.march_rays
    return MarchResult(*op(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets))


def check_rays(rays_o, rays_d, t_near, t_far, offsets) -> torch.device:
    """Shapes, dtypes and devices of a march's rays (``march_rays``, ``baked_render``); their device."""
    _validate.tensor(rays_o, "rays_o", dims=2, dtypes=(torch.float32,))
    device, n_rays = rays_o.device, rays_o.shape[0]
    _validate.size(rays_o, "rays_o", 1, 3, "xyz per ray")
    _validate.tensor(rays_d, "rays_d", dims=2, dtypes=(torch.float32,), device=device)
    _validate.size(rays_d, "rays_d", 0, n_rays, "one per ray, like rays_o")
    _validate.size(rays_d, "rays_d", 1, 3, "xyz per ray")
    for value, name in ((t_near, "t_near"), (t_far, "t_far")):
        _validate.tensor(value, name, dims=1, dtypes=(torch.float32,), device=device)
        _validate.size(value, name, 0, n_rays, "one per ray, like rays_o")
    if offsets is not None:
        _validate.tensor(offsets, "offsets", dims=1, dtypes=(torch.float32,), device=device)
        _validate.size(offsets, "offsets", 0, n_rays, "one per ray, like rays_o")
    return device


def _check_values(t_near, t_far, offsets, step_size):
    """Data checks, one device sync: finite t, offsets in [0, 1), at most 2**24 intervals a ray."""
    if t_near.shape[0] == 0 or torch.compiler.is_compiling():
        return
    span = torch.where(t_far > t_near, t_far - t_near, torch.zeros_like(t_far))
    checks = [
        ~(torch.isfinite(t_near).all()),
        ~(torch.isfinite(t_far).all()),
        (span / step_size).amax() > reference.MAX_INTERVALS - 2,
    ]
    if offsets is not None:
        checks.append(~((offsets >= 0) & (offsets < 1)).all())
    bad = torch.stack(checks).tolist()
    if bad[0]:
        raise ValueError("t_near must be finite (use fastnerf.ops.ray_aabb for rays that miss the box)")
    if bad[1]:
        raise ValueError("t_far must be finite (use fastnerf.ops.ray_aabb for rays that miss the box)")
    if bad[2]:
        raise ValueError(
            f"step_size {step_size} is too small: (t_far - t_near) / step_size must stay below 2**24 intervals a ray"
        )
    if len(bad) > 3 and bad[3]:
        raise ValueError("offsets must lie in [0, 1) (a fraction of step_size)")


def _fake(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets=None):
    n_samples = torch.library.get_ctx().new_dynamic_size()
    return (
        t_near.new_empty(t_near.shape[0], 2, dtype=torch.int64),
        t_near.new_empty(n_samples),
        t_near.new_empty(n_samples),
    )


@_native.on_load
def _register_native():
    if hasattr(torch.ops.fastnerf, "march_rays"):  # a fastnerf._C built before this op lacks it: rebuild
        torch.library.register_fake("fastnerf::march_rays")(_fake)


# The Triton backend as a Python custom op; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::march_rays_triton", mutates_args=())
def _march_rays_triton(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    aabb: torch.Tensor,
    occupied: torch.Tensor,
    step_size: float,
    offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import march_rays as kernels

    return kernels.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets)


_march_rays_triton.register_fake(_fake)
