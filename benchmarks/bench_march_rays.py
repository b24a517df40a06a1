"""march_rays: rays through a 128^3 occupancy grid at 10% occupancy, every backend beside the
reference; throughput in kept samples/s. Two cases: fixed steps through the box (rays from
outside), and an unbounded scene's march (rays from inside the box to t = 1000, the grid over
mip-NeRF 360's contracted space, Instant-NGP's cone stepping with cone_angle 1/256).
python -m benchmarks.bench_march_rays [--device cuda]"""

import math

import torch

from fastnerf.ops import march_rays, ray_aabb

from . import baselines, harness

CPU_RAYS, GPU_RAYS, QUICK_RAYS = 65536, 1 << 20, 2048
RESOLUTION = 128
OCCUPANCY = 0.10
BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
STEP = 2 * math.sqrt(3) / 1024  # Instant-NGP: the box diagonal over 1024
CONE_ANGLE, FAR = 1 / 256, 1e3  # the unbounded case: about 2,000 candidates a ray


def blocky_grid(resolution, generator):
    """[R, R, R] bool: blocks of 8^3 cells, 10% of the blocks occupied: spatially coherent, like a scene."""
    blocks = resolution // 8
    coarse = torch.rand(blocks, blocks, blocks, generator=generator) < OCCUPANCY
    return coarse.repeat_interleave(8, 0).repeat_interleave(8, 1).repeat_interleave(8, 2)


def make_inputs(n_rays, device, resolution=RESOLUTION):
    """Rays from a sphere of radius 2.5 towards random points in the box; a blocky grid."""
    g = torch.Generator().manual_seed(0)
    occupied = blocky_grid(resolution, g)
    origins = torch.randn(n_rays, 3, generator=g)
    origins = origins / origins.norm(dim=1, keepdim=True) * 2.5
    targets = torch.rand(n_rays, 3, generator=g) * 1.6 - 0.8
    directions = targets - origins
    directions = directions / directions.norm(dim=1, keepdim=True)
    aabb = torch.tensor(BOX)
    rays_o, rays_d, aabb, occupied = (x.to(device) for x in (origins, directions, aabb, occupied))
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb, backend="torch")
    return rays_o, rays_d, t_near, t_far, (aabb, occupied)


def make_unbounded_inputs(n_rays, device, resolution=RESOLUTION):
    """Rays from inside the box, looking every way, from t = 0.05 to FAR; a blocky contracted grid."""
    g = torch.Generator().manual_seed(1)
    occupied = blocky_grid(resolution, g)
    origins = torch.rand(n_rays, 3, generator=g) - 0.5
    directions = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=1)
    t_near, t_far = torch.full((n_rays,), 0.05), torch.full((n_rays,), FAR)
    rays_o, rays_d, t_near, t_far, aabb, occupied = (
        x.to(device) for x in (origins, directions, t_near, t_far, torch.tensor(BOX), occupied))
    return rays_o, rays_d, t_near, t_far, (aabb, occupied)


def _case(name, n_rays, grid, kept):
    # the fewest bytes: rays and segments in, the grid read once, packed_info and samples out
    return harness.Case(f"{name} {n_rays} rays {grid[1].shape[0]}^3 {float(grid[1].float().mean()):.0%}", kept,
                        "samples", bytes_fwd=n_rays * (24 + 24 + 8 + 16) + grid[1].numel() + 8 * kept,
                        bytes_fwd_bwd=None)


def run(device="cpu", *, quick=False, only=None):
    gpu = torch.device(device).type == "cuda"
    n_rays = QUICK_RAYS if quick else (GPU_RAYS if gpu else CPU_RAYS)
    resolution = 32 if quick else RESOLUTION
    rows = []
    # fixed steps through the box
    rays_o, rays_d, t_near, t_far, grid = make_inputs(n_rays, device, resolution)
    info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, backend="torch")
    calls = {}
    for backend in harness.backends_to_run(device, only):
        def forward(backend=backend):
            if backend == harness.FAST_TORCH:
                return baselines.march_rays(rays_o, rays_d, t_near, t_far, *grid, STEP)
            return march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, backend=backend)

        calls[backend] = {"fwd": forward}
    rows += harness.measure("march_rays", _case("box", n_rays, grid, int(info[:, 1].sum())), device, calls,
                            budget_s=20.0)

    # an unbounded scene: contracted grid, cone steps; a quarter of the rays (each ~2,000 candidates)
    n_far = max(n_rays // 4, 1) if not quick else 256
    rays_o, rays_d, t_near, t_far, grid = make_unbounded_inputs(n_far, device, resolution)
    mode = dict(contraction="mipnerf360", cone_angle=CONE_ANGLE)
    info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, **mode, backend="torch")
    calls = {}
    for backend in harness.backends_to_run(device, only):
        def forward_far(backend=backend):
            if backend == harness.FAST_TORCH:
                return baselines.march_rays_contracted(rays_o, rays_d, t_near, t_far, *grid, STEP, CONE_ANGLE)
            return march_rays(rays_o, rays_d, t_near, t_far, grid, STEP, **mode, backend=backend)

        calls[backend] = {"fwd": forward_far}
    rows += harness.measure("march_rays", _case("unbounded", n_far, grid, int(info[:, 1].sum())), device, calls,
                            budget_s=20.0)
    return rows


def main(argv=None):
    harness.main("march_rays", run, argv)


if __name__ == "__main__":
    main()
