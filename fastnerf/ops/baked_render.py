"""fastnerf.ops.baked_render: march, trilinear lookup in a sparse vertex grid and feature
compositing, fused in one pass per ray (the ``baked`` renderer's kernel).

Backends: "torch" (fastnerf.reference.baked_render: march_rays + gathers + compositing, with
per-sample tensors), "cpp" and "cuda" (torch.ops.fastnerf.baked_render in fastnerf._C),
"triton" (torch.ops.fastnerf.baked_render_triton, kernels in fastnerf.kernels.baked_render).
The fused backends make no per-sample tensor: each ray is marched, looked up and composited in
registers, and the backward marches it again (the gradient of the compositing is a suffix sum,
known from the forward's outputs, as in ``composite``). They share one fake kernel and one
autograd formula, so they work under torch.compile and pass torch.library.opcheck.
"""

from typing import NamedTuple

import torch

from .. import _native, backends
from ..reference import baked_render as reference
from . import _validate
from .march_rays import _check_values, check_rays, grid_tensors


class BakedRenderResult(NamedTuple):
    features: torch.Tensor  # [N, F] composited features (not divided by opacity)
    opacity: torch.Tensor  # [N]
    depth: torch.Tensor  # [N] expected midpoint t


def baked_render(
    rays_o: torch.Tensor,  # [N, 3] float32
    rays_d: torch.Tensor,  # [N, 3] float32
    t_near: torch.Tensor,  # [N] float32, finite (fastnerf.ops.ray_aabb)
    t_far: torch.Tensor,  # [N] float32, finite
    grid,  # OccupancyGrid or (aabb [6] float32, occupied [Rx, Ry, Rz] bool): where samples are taken
    index: torch.Tensor,  # [Gx, Gy, Gz] int32 (each >= 2): row of values per vertex, -1 where none
    values: torch.Tensor,  # [V, 1+F] float32/float64: density, then F features, per stored vertex
    step_size: float,
    *,
    offsets: torch.Tensor = None,  # [N] float32 in [0, 1): start jitter in steps (training)
    early_stop_eps: float = 1e-4,
    backend: str = None,
) -> BakedRenderResult:
    """Render rays through a baked (sparse vertex grid) scene, returning composited features.

    Samples are exactly ``march_rays``' (same arguments); at each sample midpoint the vertex grid
    ``index`` (spanning the grid's aabb, vertex i at ``lo + i (hi - lo) / (G - 1)``) is
    interpolated trilinearly, ``sigma = max(v[0], 0)`` and the features ``v[1:]`` are
    composited front to back; a ray stops once its transmittance falls below
    ``early_stop_eps``. A vertex row of -1 (or >= V) contributes zero. The exact rules are in
    fastnerf.reference.baked_render. Differentiable in ``values``.

    Example:
        >>> import torch
        >>> from fastnerf.ops import baked_render, ray_aabb
        >>> aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1])
        >>> occupied = torch.ones(4, 4, 4, dtype=torch.bool)
        >>> index = torch.arange(27, dtype=torch.int32).reshape(3, 3, 3)   # every vertex stored
        >>> values = torch.cat([torch.full((27, 1), 50.0), torch.rand(27, 2)], 1)  # dense, 2 features
        >>> rays_o, rays_d = torch.tensor([[0.0, 0, -3]]), torch.tensor([[0.0, 0, 1]])
        >>> t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
        >>> out = baked_render(rays_o, rays_d, t_near, t_far, (aabb, occupied), index, values, 0.01)
        >>> round(float(out.opacity[0]), 3), tuple(out.features.shape)
        (1.0, (1, 2))
    """
    device = check_rays(rays_o, rays_d, t_near, t_far, offsets)
    step_size = _validate.positive_float(step_size, "step_size")
    aabb, occupied = grid_tensors(grid, device=device)
    _validate.tensor(index, "index", dims=3, dtypes=(torch.int32,), device=device)
    if min(index.shape) < 2:
        raise ValueError(f"index must have at least 2 vertices per axis, got shape {tuple(index.shape)}")
    _validate.tensor(values, "values", dims=2, dtypes=_validate.FLOAT_DTYPES, device=device)
    if values.shape[1] < 2:
        raise ValueError(f"values must have a density column and at least one feature, got shape "
                         f"{tuple(values.shape)}")
    if isinstance(early_stop_eps, bool) or not isinstance(early_stop_eps, (int, float)) or \
            not 0.0 <= early_stop_eps < 1.0:
        raise ValueError(f"early_stop_eps must be a number in [0, 1), got {early_stop_eps!r}")
    _check_values(t_near, t_far, offsets, step_size)
    rays_o, rays_d, t_near, t_far = (x.detach().contiguous() for x in (rays_o, rays_d, t_near, t_far))
    offsets = None if offsets is None else offsets.detach().contiguous()
    occupied, index = occupied.contiguous(), index.contiguous()

    name = backends.select(device, backend)
    args = (rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size, float(early_stop_eps))
    if name == "torch":
        return BakedRenderResult(*reference.baked_render(*args))
    op = torch.ops.fastnerf.baked_render_triton if name == "triton" else torch.ops.fastnerf.baked_render
    return BakedRenderResult(*op(*args))


# ---- fake kernels and autograd, shared by the native and Triton ops ---------------------------


def _fake_forward(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values, step_size,
                  early_stop_eps):
    n_rays = rays_o.shape[0]
    return values.new_empty(n_rays, values.shape[1] - 1), values.new_empty(n_rays), values.new_empty(n_rays)


def _fake_backward(grad_features, grad_opacity, grad_depth, rays_o, rays_d, t_near, t_far, offsets, aabb, occupied,
                   index, values, step_size, early_stop_eps, features, opacity, depth):
    return values.new_empty(values.shape)


def _setup_context(ctx, inputs, output):
    *tensors, step_size, early_stop_eps = inputs
    ctx.step_size, ctx.early_stop_eps = step_size, early_stop_eps
    ctx.has_offsets = tensors[4] is not None
    saved = [t for t in tensors if t is not None]
    ctx.save_for_backward(*saved, *output)


def _autograd_with(backward_op):
    def backward(ctx, grad_features, grad_opacity, grad_depth):
        saved = list(ctx.saved_tensors)
        if not ctx.has_offsets:
            saved.insert(4, None)
        inputs, outputs = saved[:9], saved[9:]
        grads = [torch.zeros_like(o) if g is None else g.contiguous()
                 for g, o in zip((grad_features, grad_opacity, grad_depth), outputs)]
        grad_values = backward_op(*grads, *inputs, ctx.step_size, ctx.early_stop_eps, *outputs)
        return None, None, None, None, None, None, None, None, grad_values, None, None

    return backward


@_native.on_load
def _register_native():
    if not hasattr(torch.ops.fastnerf, "baked_render"):  # a fastnerf._C built before this op: rebuild
        return
    torch.library.register_fake("fastnerf::baked_render")(_fake_forward)
    torch.library.register_fake("fastnerf::baked_render_bwd")(_fake_backward)
    torch.library.register_autograd("fastnerf::baked_render", _autograd_with(torch.ops.fastnerf.baked_render_bwd),
                                    setup_context=_setup_context)


# The Triton backend as Python custom ops; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::baked_render_triton", mutates_args=())
def _baked_render_triton(
    rays_o: torch.Tensor, rays_d: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
    offsets: torch.Tensor | None, aabb: torch.Tensor, occupied: torch.Tensor, index: torch.Tensor,
    values: torch.Tensor, step_size: float, early_stop_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import baked_render as kernels

    return kernels.baked_render_forward(rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index, values,
                                        step_size, early_stop_eps)


@torch.library.custom_op("fastnerf::baked_render_triton_bwd", mutates_args=())
def _baked_render_triton_bwd(
    grad_features: torch.Tensor, grad_opacity: torch.Tensor, grad_depth: torch.Tensor,
    rays_o: torch.Tensor, rays_d: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
    offsets: torch.Tensor | None, aabb: torch.Tensor, occupied: torch.Tensor, index: torch.Tensor,
    values: torch.Tensor, step_size: float, early_stop_eps: float,
    features: torch.Tensor, opacity: torch.Tensor, depth: torch.Tensor,
) -> torch.Tensor:
    from ..kernels import baked_render as kernels

    return kernels.baked_render_backward(grad_features, grad_opacity, grad_depth, rays_o, rays_d, t_near, t_far,
                                         offsets, aabb, occupied, index, values, step_size, early_stop_eps,
                                         features, opacity, depth)


_baked_render_triton.register_fake(_fake_forward)
_baked_render_triton_bwd.register_fake(_fake_backward)
_baked_render_triton.register_autograd(_autograd_with(_baked_render_triton_bwd), setup_context=_setup_context)
