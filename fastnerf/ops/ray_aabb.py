"""fastnerf.ops.ray_aabb: where each ray enters and leaves an axis-aligned box, on every backend.

Backends: "torch" (fastnerf.reference.ray_aabb), "cpp" and "cuda" (torch.ops.fastnerf.ray_aabb
in fastnerf._C), "triton" (torch.ops.fastnerf.ray_aabb_triton, kernels in
fastnerf.kernels.ray_aabb). All compute the same float32 operations: outputs are bitwise equal.
Not differentiable: the outputs never carry a gradient.
"""

from typing import NamedTuple

import torch

from .. import _native, backends
from ..reference import ray_aabb as reference
from . import _validate


class RayAabbResult(NamedTuple):
    t_near: torch.Tensor  # [N] float32, >= 0 (0 when the origin is inside); 0 for missed rays
    t_far: torch.Tensor  # [N] float32, > t_near for hit rays; 0 for missed rays
    hit: torch.Tensor  # [N] bool


def ray_aabb(
    rays_o: torch.Tensor,  # [N, 3] float32 origins
    rays_d: torch.Tensor,  # [N, 3] float32 directions, any length; zero components are fine
    aabb,  # [6] float32 tensor or six numbers: (xmin, ymin, zmin, xmax, ymax, zmax)
    *,
    backend: str = None,
) -> RayAabbResult:
    """Intersect rays with a box: the segment [t_near, t_far] of o + t d inside it, t >= 0.

    hit is False for rays that miss, that only touch an edge or face (zero-length segment), whose
    box lies behind the origin, that have a zero direction, or with a non-finite component; such
    rays get t_near = t_far = 0, so fastnerf.ops.march_rays gives them no samples.

    Example:
        >>> import torch
        >>> from fastnerf.ops import ray_aabb
        >>> rays_o = torch.tensor([[0.0, 0.0, -3.0], [5.0, 5.0, 5.0]])
        >>> rays_d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        >>> t_near, t_far, hit = ray_aabb(rays_o, rays_d, [-1, -1, -1, 1, 1, 1])
        >>> t_near.tolist(), t_far.tolist(), hit.tolist()
        ([2.0, 0.0], [4.0, 0.0], [True, False])
    """
    _validate.tensor(rays_o, "rays_o", dims=2, dtypes=(torch.float32,))
    device = rays_o.device
    _validate.size(rays_o, "rays_o", 1, 3, "xyz per ray")
    _validate.tensor(rays_d, "rays_d", dims=2, dtypes=(torch.float32,), device=device)
    _validate.size(rays_d, "rays_d", 0, rays_o.shape[0], "one per ray, like rays_o")
    _validate.size(rays_d, "rays_d", 1, 3, "xyz per ray")
    aabb = _validate.aabb(aabb, "aabb", device=device)
    rays_o, rays_d = rays_o.detach(), rays_d.detach()

    name = backends.select(device, backend)
    if name == "torch":
        return RayAabbResult(*reference.ray_aabb(rays_o, rays_d, aabb))
    op = torch.ops.fastnerf.ray_aabb_triton if name == "triton" else torch.ops.fastnerf.ray_aabb
    return RayAabbResult(*op(rays_o, rays_d, aabb))


def _fake(rays_o, rays_d, aabb):
    n_rays = rays_o.shape[0]
    return rays_o.new_empty(n_rays), rays_o.new_empty(n_rays), rays_o.new_empty(n_rays, dtype=torch.bool)


@_native.on_load
def _register_native():
    if hasattr(torch.ops.fastnerf, "ray_aabb"):  # a fastnerf._C built before this op lacks it: rebuild
        torch.library.register_fake("fastnerf::ray_aabb")(_fake)


# The Triton backend as a Python custom op; triton itself is imported on first call only.
@torch.library.custom_op("fastnerf::ray_aabb_triton", mutates_args=())
def _ray_aabb_triton(
    rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import ray_aabb as kernels

    return kernels.ray_aabb(rays_o, rays_d, aabb)


_ray_aabb_triton.register_fake(_fake)
