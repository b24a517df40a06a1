"""ray_aabb: rays against a box, every backend beside the reference.
python -m benchmarks.bench_ray_aabb [--device cuda]"""

import torch

from fastnerf.ops import ray_aabb

from . import baselines, harness

CPU_RAYS, GPU_RAYS, QUICK_RAYS = 1 << 20, 1 << 24, 4096


def run(device="cpu", *, quick=False, only=None):
    n_rays = QUICK_RAYS if quick else (GPU_RAYS if torch.device(device).type == "cuda" else CPU_RAYS)
    g = torch.Generator().manual_seed(0)
    rays_o = (torch.randn(n_rays, 3, generator=g) * 2).to(device)
    rays_d = torch.randn(n_rays, 3, generator=g).to(device)
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], device=device)
    case = harness.Case(f"{n_rays} rays", n_rays, "rays", bytes_fwd=n_rays * (24 + 24 + 9), bytes_fwd_bwd=None)
    calls = {b: {"fwd": (lambda run_op=harness.op_for(b, ray_aabb, baselines.ray_aabb): run_op(rays_o, rays_d, aabb))}
             for b in harness.backends_to_run(device, only)}
    return harness.measure("ray_aabb", case, device, calls)


def main(argv=None):
    harness.main("ray_aabb", run, argv)


if __name__ == "__main__":
    main()
