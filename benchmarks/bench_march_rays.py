"""march_rays: rays through a 128^3 occupancy grid at 10% occupancy, every backend beside the
reference; throughput in kept samples/s.  python -m benchmarks.bench_march_rays [--device cuda]"""

import math

import torch

from fastnerf.ops import march_rays, ray_aabb

from . import baselines, harness

CPU_RAYS, GPU_RAYS, QUICK_RAYS = 65536, 1 << 20, 2048
RESOLUTION = 128
OCCUPANCY = 0.10
BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
STEP = 2 * math.sqrt(3) / 1024  # Instant-NGP: the box diagonal over 1024


def make_inputs(n_rays, device, resolution=RESOLUTION):
    """Rays from a sphere of radius 2.5 towards random points in the box; a blocky grid (16^3
    blocks of 8^3 cells, 10% occupied: spatially coherent, like a scene)."""
    g = torch.Generator().manual_seed(0)
    blocks = resolution // 8
    coarse = torch.rand(blocks, blocks, blocks, generator=g) < OCCUPANCY
    occupied = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1).repeat_interleave(8, 2)
    origins = torch.randn(n_rays, 3, generator=g)
    origins = origins / origins.norm(dim=1, keepdim=True) * 2.5
    targets = torch.rand(n_rays, 3, generator=g) * 1.6 - 0.8
    directions = targets - origins
    directions = directions / directions.norm(dim=1, keepdim=True)
    aabb = torch.tensor(BOX)
    rays_o, rays_d, aabb, occupied = (x.to(device) for x in (origins, directions, aabb, occupied))
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb, backend="torch")
    return rays_o, rays_d, t_near, t_far, (aabb, occupied)


def run(device="cpu", *, quick=False, only=None):
    n_rays = QUICK_RAYS if quick else (GPU_RAYS if torch.device(device).type == "cuda" else CPU_RAYS)
    resolution = 32 if quick else RESOLUTION
    rays_o, rays_d, t_near, t_far, grid = make_inputs(n_rays, device, resolution)
    info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, backend="torch")
    kept = int(info[:, 1].sum())
    occupancy = float(grid[1].float().mean())
    case = harness.Case(
        f"{n_rays} rays {resolution}^3 {occupancy:.0%}", kept, "samples",
        # the fewest bytes: rays and segments in, the grid read once, packed_info and samples out
        bytes_fwd=n_rays * (24 + 24 + 8 + 16) + grid[1].numel() + 8 * kept, bytes_fwd_bwd=None,
    )
    calls = {}
    for backend in harness.backends_to_run(device, only):
        def forward(backend=backend):
            if backend == harness.FAST_TORCH:
                return baselines.march_rays(rays_o, rays_d, t_near, t_far, *grid, STEP)
            return march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, backend=backend)

        calls[backend] = {"fwd": forward}
    return harness.measure("march_rays", case, device, calls, budget_s=20.0)


def main(argv=None):
    harness.main("march_rays", run, argv)


if __name__ == "__main__":
    main()
