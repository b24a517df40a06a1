"""baked_render: a camera's rays through a synthetic baked scene (a sphere shell, ~270k stored
vertices of a 128^3 vertex grid, 16 features, a 64^3 occupancy grid), forward and forward+backward
(gradients of the values), every backend beside the fast_torch baseline and the reference, with
the memory-traffic floor; throughput in rays/s.  python -m benchmarks.bench_baked_render [--device cuda]"""

import math

import torch

from fastnerf.cameras import Camera, look_at
from fastnerf.ops import baked_render, ray_aabb

from . import baselines, harness

CAMERA_SIDES, QUICK_CAMERA_SIDES = (100, 800), (12, 24)  # square images, one ray per pixel
VERTICES, OCCUPANCY, FEATURES = 128, 64, 16  # vertex grid and occupancy grid per axis; features
QUICK_VERTICES, QUICK_OCCUPANCY, QUICK_FEATURES = 20, 10, 16
RADIUS, HALF_THICKNESS, PEAK_DENSITY = 0.8, 0.05, 300.0  # opaque: a ray stops inside the first wall
EARLY_STOP_EPS = 1e-4
# On a CPU the per-sample PyTorch paths (fast_torch, torch) are left out above this many rays:
# at 800x800 they gather gigabytes and take minutes a call. The fused backends still run.
CPU_PER_SAMPLE_MAX_RAYS = 100 * 100


def make_scene(vertices, occupancy, features, device):
    """(aabb, occupied, index, values, step): a shell |r - RADIUS| <= HALF_THICKNESS in [-1, 1]^3,
    stored one vertex beyond it (so the lookup sees its edges), rows in x-major order; density a
    parabola across the wall, patchy, and negative at the stored edge (rendering clamps it);
    smooth random features. One sample per vertex spacing."""
    g = torch.Generator().manual_seed(0)
    spacing = 2.0 / (vertices - 1)
    axis = torch.linspace(-1.0, 1.0, vertices)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)  # [G, G, G, 3]
    radius = points.norm(dim=-1)
    stored = (radius - RADIUS).abs() <= HALF_THICKNESS + spacing
    index = torch.full(stored.shape, -1, dtype=torch.int32)
    index[stored] = torch.arange(int(stored.sum()), dtype=torch.int32)
    p = points[stored]  # [V, 3]
    profile = 1.0 - ((radius[stored] - RADIUS) / HALF_THICKNESS) ** 2
    patches = 0.75 + 0.25 * torch.sin(6 * p).prod(-1)
    frequencies = torch.randn(3, features, generator=g) * 3.0
    phases = torch.rand(features, generator=g) * 2 * math.pi
    values = torch.cat([(PEAK_DENSITY * profile * patches)[:, None], torch.sin(p @ frequencies + phases)], 1)

    centres = (torch.arange(occupancy) + 0.5) * (2.0 / occupancy) - 1.0
    cells = torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), -1).norm(dim=-1)
    reach = HALF_THICKNESS + spacing + math.sqrt(3) / occupancy  # shell, stored edge, half a cell diagonal
    occupied = (cells - RADIUS).abs() <= reach
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    return aabb.to(device), occupied.to(device), index.to(device), values.contiguous().to(device), spacing


def make_rays(side, device):
    """A side x side camera 2.6 from the centre, 40 degrees across: the shell fills about 60% of it."""
    eye = torch.tensor([1.5, -2.0, 1.0])
    eye = eye / eye.norm() * 2.6
    camera = Camera.from_fov(look_at(eye, (0.0, 0.0, 0.0)), side, side, math.radians(40.0)).to(device)
    origins, directions = camera.rays()
    return origins.reshape(-1, 3).contiguous(), directions.reshape(-1, 3).contiguous()


def case_for(side, n_stored, scene) -> harness.Case:
    """The fewest bytes: rays in and outputs out, the occupancy grid, and each stored vertex's
    index entry and row read once (the backward also reads the output gradients and the outputs
    and writes the value gradients once)."""
    occupied, values = scene[1], scene[3]
    n_rays, channels = side * side, values.shape[1]
    scene_bytes = occupied.numel() + 4 * n_stored * (1 + channels)
    fwd = n_rays * (32 + 4 * (channels + 1)) + scene_bytes
    bwd = n_rays * (32 + 8 * (channels + 1)) + scene_bytes + 4 * n_stored * channels
    return harness.Case(f"{side}x{side} V={n_stored // 1000}k F={channels - 1}", n_rays, "rays", fwd, fwd + bwd)


def calls_for(backend, rays, scene):
    rays_o, rays_d, t_near, t_far = rays
    aabb, occupied, index, values, step = scene
    if backend == harness.FAST_TORCH:  # the user's scene is a dense grid: their parameter
        values = baselines.dense_grid(index, values).detach()
    leaf = values.clone().requires_grad_()
    n_rays, channels = rays_o.shape[0], values.shape[1]
    g = torch.Generator().manual_seed(1)
    channels = scene[3].shape[1]
    cotangents = [torch.rand(n_rays, channels - 1, generator=g), torch.rand(n_rays, generator=g),
                  torch.rand(n_rays, generator=g)]
    cotangents = [c.to(values.device) for c in cotangents]

    def run_op(v):
        if backend == harness.FAST_TORCH:
            return baselines.baked_render(rays_o, rays_d, t_near, t_far, None, aabb, occupied, v, step,
                                          EARLY_STOP_EPS)
        return baked_render(rays_o, rays_d, t_near, t_far, (aabb, occupied), index, v, step,
                            early_stop_eps=EARLY_STOP_EPS, backend=backend)

    def forward():
        with torch.no_grad():
            return run_op(values)

    def forward_backward():
        torch.autograd.backward(list(run_op(leaf)), cotangents)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def backends_for(device, n_rays, only):
    """harness.backends_to_run, less a native backend whose fastnerf._C predates this op (it
    lacks torch.ops.fastnerf.baked_render until rebuilt), less the per-sample PyTorch paths on
    a CPU above CPU_PER_SAMPLE_MAX_RAYS; says what it leaves out."""
    names = harness.backends_to_run(device, only)
    skipped = {}
    if not hasattr(torch.ops.fastnerf, "baked_render"):
        stale = "fastnerf._C was built before baked_render: rebuild it"
        skipped.update({b: stale for b in names if b in ("cpp", "cuda")})
    if torch.device(device).type == "cpu" and n_rays > CPU_PER_SAMPLE_MAX_RAYS:
        skipped.update({b: f"per-sample PyTorch on a CPU above {CPU_PER_SAMPLE_MAX_RAYS} rays"
                        for b in names if b in (harness.FAST_TORCH, "torch")})
    for backend, why in skipped.items():
        print(f"baked_render {n_rays} rays: skipping {backend} ({why})", flush=True)
    return [b for b in names if b not in skipped]


def run(device="cpu", *, quick=False, only=None):
    if quick:
        sides, scene = QUICK_CAMERA_SIDES, make_scene(QUICK_VERTICES, QUICK_OCCUPANCY, QUICK_FEATURES, device)
    else:
        sides, scene = CAMERA_SIDES, make_scene(VERTICES, OCCUPANCY, FEATURES, device)
    aabb, n_stored = scene[0], scene[3].shape[0]
    rows = []
    for side in sides:
        rays_o, rays_d = make_rays(side, device)
        t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb, backend="torch")
        rays = (rays_o, rays_d, t_near, t_far)
        calls = {b: calls_for(b, rays, scene) for b in backends_for(device, side * side, only)}
        rows += harness.measure("baked_render", case_for(side, n_stored, scene), device, calls,
                                budget_s=2.0 if quick else 20.0)
    return rows


def main(argv=None):
    harness.main("baked_render", run, argv)


if __name__ == "__main__":
    main()
