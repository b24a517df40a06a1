"""fastnerf.ops.march_rays: samples along rays, kept only in occupied grid cells; fixed steps or
Instant-NGP's cone stepping, the grid over the box or over mip-NeRF 360's contracted space.

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
    contraction: str = None,  # None, or "mipnerf360": the grid covers contracted space [-2, 2]^3
    cone_angle: float = 0.0,  # >= 0: steps of max(t * cone_angle, step_size); 0: fixed steps
    max_step: float = None,  # >= step_size: the longest cone step; None: no cap
    disparity_step: float = 0.0,  # >= 0 (> 0 needs cone_angle > 0): far steps of at least disparity_step * t**2
    backend: str = None,
) -> MarchResult:
    """March each ray from t0 = t_near + offsets * (first step) to t_far.

    Fixed steps (cone_angle 0): interval m of ray r is [t0 + m step, min(t0 + (m+1) step, t_far)]
    for m = 0, 1, ... while its start < t_far. Cone stepping (cone_angle > 0, Instant-NGP): each
    interval is min(max(start * cone_angle, step_size), max_step) long, so a ray to t = 1e4 costs
    a few thousand intervals, not millions. With disparity_step > 0 the steps past
    t = cone_angle / disparity_step grow as disparity_step * t**2 (samples evenly spaced in
    disparity 1/t, as mip-NeRF 360 places them in the far field): a ray to any far plane costs at
    most about 1 / cone_angle intervals past that distance. An interval is kept iff its midpoint lies in an
    occupied cell: without contraction the grid spans the aabb (cell of p:
    floor((p - aabb_min) * R / (aabb_max - aabb_min)); outside is empty); with
    contraction="mipnerf360" it spans mip-NeRF 360's contracted cube [-2, 2]^3 of
    ``fastnerf.reference.march_rays.contract`` (the aabb is its middle half), so all of space
    has a cell. The exact float32 formulas and the tie-breaking at cell faces are in
    fastnerf.reference.march_rays. A ray may have at most 2**24 intervals.
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
    contraction, cone_angle, max_step = check_mode(contraction, cone_angle, max_step, step_size)
    disparity_step = check_disparity_step(disparity_step, cone_angle)
    aabb, occupied = grid_tensors(grid, device=device)
    _check_values(t_near, t_far, offsets, step_size, cone_angle=cone_angle, max_step=max_step)
    rays_o, rays_d, t_near, t_far = (x.detach() for x in (rays_o, rays_d, t_near, t_far))
    offsets = None if offsets is None else offsets.detach()

    name = backends.select(device, backend)
    args = (rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets)
    if name == "torch":
        return MarchResult(*reference.march_rays(*args, contraction, cone_angle, max_step, disparity_step))
    # The default mode goes through the ops' original arguments: a fastnerf._C built before the
    # contracted mode (or before disparity_step) still serves the calls that do not use it.
    mode = {} if (contraction, cone_angle, max_step) == (None, 0.0, None) else \
        dict(contraction=contraction, cone_angle=cone_angle, max_step=max_step)
    if disparity_step:
        mode["disparity_step"] = disparity_step
    if name == "triton":
        return MarchResult(*torch.ops.fastnerf.march_rays_triton(*args, **mode))
    missing = [arg for arg in mode if arg in ("cone_angle", "disparity_step") and not _native_has(arg)]
    if missing:
        raise RuntimeError(f"fastnerf._C predates march_rays' {missing[0]}: rebuild it "
                           "(python setup.py build_ext --inplace), or pass backend='torch'")
    return MarchResult(*torch.ops.fastnerf.march_rays(*args, **mode))


def check_mode(contraction, cone_angle, max_step, step_size):
    """(contraction, cone_angle float, max_step float or None), checked: errors name the argument."""
    if contraction not in reference.CONTRACTIONS:
        raise ValueError(f"contraction must be one of {reference.CONTRACTIONS}, got {contraction!r}")
    if isinstance(cone_angle, torch.Tensor) and cone_angle.numel() == 1:
        cone_angle = cone_angle.item()
    if isinstance(cone_angle, bool) or not isinstance(cone_angle, (int, float)) or \
            not 0.0 <= float(cone_angle) < float("inf"):
        raise ValueError(f"cone_angle must be a finite number >= 0, got {cone_angle!r}")
    if max_step is not None:
        max_step = _validate.positive_float(max_step, "max_step")
        if max_step < step_size:
            raise ValueError(f"max_step must be >= step_size ({step_size}), got {max_step}")
    return contraction, float(cone_angle), max_step


def check_disparity_step(disparity_step, cone_angle: float) -> float:
    """disparity_step as a float, checked: finite, >= 0, and > 0 only with cone stepping."""
    if isinstance(disparity_step, torch.Tensor) and disparity_step.numel() == 1:
        disparity_step = disparity_step.item()
    if isinstance(disparity_step, bool) or not isinstance(disparity_step, (int, float)) or \
            not 0.0 <= float(disparity_step) < float("inf"):
        raise ValueError(f"disparity_step must be a finite number >= 0, got {disparity_step!r}")
    if disparity_step > 0 and cone_angle == 0:
        raise ValueError(f"disparity_step ({disparity_step}) needs cone stepping: give cone_angle > 0 too")
    return float(disparity_step)


def _native_has(argument: str) -> bool:
    return any(arg.name == argument for arg in torch.ops.fastnerf.march_rays.default._schema.arguments)


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


def _check_values(t_near, t_far, offsets, step_size, *, cone_angle=0.0, max_step=None):
    """Data checks, one device sync: finite t, offsets in [0, 1), at most 2**24 intervals a ray
    (cone stepping: the bound of ``cone_interval_bound``, and steps that float32 t can take).
    disparity_step only lengthens steps, so both cone checks hold with it too."""
    if t_near.shape[0] == 0 or torch.compiler.is_compiling():
        return
    if cone_angle == 0:
        span = torch.where(t_far > t_near, t_far - t_near, torch.zeros_like(t_far))
        too_many = (span / step_size).amax() > reference.MAX_INTERVALS - 2
    else:
        bound = cone_interval_bound(t_near.double(), t_far.double(), step_size, cone_angle, max_step)
        too_many = bound.nan_to_num(0.0).amax() > reference.MAX_INTERVALS - 2
    checks = [~(torch.isfinite(t_near).all()), ~(torch.isfinite(t_far).all()), too_many]
    if cone_angle > 0:  # start + dt must move start: dt at least 2 ulps of every t a ray passes
        checks.append(~(cone_steps_advance(t_near.double(), t_far.double(), step_size, cone_angle, max_step).all()))
    if offsets is not None:
        checks.append(~((offsets >= 0) & (offsets < 1)).all())
    bad = torch.stack(checks).tolist()
    if bad[0]:
        raise ValueError("t_near must be finite (use fastnerf.ops.ray_aabb for rays that miss the box)")
    if bad[1]:
        raise ValueError("t_far must be finite (use fastnerf.ops.ray_aabb for rays that miss the box)")
    if bad[2]:
        what = "(t_far - t_near) / step_size" if cone_angle == 0 else "the cone-stepped interval count"
        raise ValueError(f"step_size {step_size} is too small: {what} must stay below 2**24 intervals a ray")
    if cone_angle > 0 and bad[3]:
        raise ValueError(f"step_size {step_size} (cone_angle {cone_angle}, max_step {max_step}) is too small for "
                         "the rays' t: cone steps must be at least |t| * 2**-22 or float32 t would not advance")
    if offsets is not None and bad[-1]:
        raise ValueError("offsets must lie in [0, 1) (a fraction of step_size)")


def cone_steps_advance(t_near, t_far, step_size, cone_angle, max_step=None):
    """[N] bool: whether every cone step of the ray is at least |t| 2**-22 (two float32 ulps of t),
    so start + dt always advances and by at least 3/4 of dt. dt(t) / |t| is smallest at an end
    of [t_near, t_far]: for t < 0 dt is step_size; for t > 0 it falls as step_size / t, stays
    cone_angle, then falls as max_step / t."""
    cap = float("inf") if max_step is None else max_step

    def fine(t):
        return (t * cone_angle).clamp(min=step_size, max=cap) >= t.abs() * 2.0**-22

    return fine(t_near) & (fine(t_far) | (t_far <= t_near))


def cone_interval_bound(t0, t_far, step_size, cone_angle, max_step=None):
    """[N] float64: at least the number of cone-stepped intervals of each ray from t0 to t_far.
    Steps are step_size while t * cone_angle < step_size (linear), then grow by 1 + cone_angle a
    step (geometric) until they reach max_step (linear again). float32 rounding may shorten a
    step by half an ulp of t, at most 1/4 of it given ``cone_steps_advance``; allowed for."""
    cap = float("inf") if max_step is None else max_step
    t_linear, t_capped = step_size / cone_angle, cap / cone_angle
    short = 0.75  # the shortest a rounded step can be, as a fraction of its exact length
    zero = torch.zeros_like(t0)
    n_linear = torch.ceil(torch.maximum(torch.clamp(t_far, max=t_linear) - t0, zero) / (step_size * short))
    lo = torch.clamp(t0, min=t_linear)
    hi = torch.clamp(t_far, max=t_capped)
    growth = torch.log1p(torch.tensor(cone_angle * short, dtype=torch.float64))
    n_geometric = torch.where(hi > lo, torch.ceil(torch.log(hi / lo) / growth), zero)
    n_capped = torch.ceil(torch.maximum(t_far - torch.clamp(t0, min=t_capped), zero) / (cap * short)) \
        if max_step is not None else zero
    return n_linear + n_geometric + n_capped + 2


def _fake(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets=None, contraction=None,
          cone_angle=0.0, max_step=None, disparity_step=0.0):
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
    contraction: str | None = None,
    cone_angle: float = 0.0,
    max_step: float | None = None,
    disparity_step: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import march_rays as kernels

    return kernels.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets,
                              contraction, cone_angle, max_step, disparity_step)


_march_rays_triton.register_fake(_fake)
