"""project_features: points projected into V source views, C-channel feature maps sampled
bilinearly (PixelNeRF's per-sample image features); forward and forward+backward (features),
every backend beside the reference and the copy-bandwidth floor.
python -m benchmarks.bench_project_features [--device cuda]"""

import math

import torch

from fastnerf.cameras import look_at
from fastnerf.ops import project_features

from . import harness

# (points, views, channels, map side): a training step (4 scenes x 128 rays x 32 samples, 2 views,
# 3 x 64 projected latent channels, 32x32 maps), and a render chunk.
CPU_CASES = [(16384, 2, 192, 32), (65536, 3, 192, 32)]
GPU_CASES = [(1 << 20, 3, 192, 64), (1 << 18, 3, 512, 64)]
QUICK_CASES = [(1024, 2, 16, 8)]


def make_inputs(n_points, n_views, channels, side, device):
    g = torch.Generator().manual_seed(0)
    angles = torch.arange(n_views, dtype=torch.float64) * 2 * math.pi / n_views
    eyes = torch.stack([3 * torch.cos(angles), 3 * torch.sin(angles), torch.ones(n_views, dtype=torch.float64)], -1)
    c2w = look_at(eyes, (0.0, 0.0, 0.0)).float()
    focal = side / (2 * math.tan(math.radians(22.5)))
    intrinsics = torch.tensor([[focal, focal, side / 2, side / 2]]).expand(n_views, 4).contiguous()
    points = torch.rand(n_points, 3, generator=g) * 2 - 1
    features = torch.randn(n_views, channels, side, side, generator=g).contiguous(memory_format=torch.channels_last)
    return [x.to(device) for x in (points, c2w, intrinsics, features)]


def case_for(n_points, n_views, channels, side) -> harness.Case:
    out = 4 * n_views * n_points * channels
    fwd = 4 * n_points * 3 + out  # the maps are small and read from cache: the output dominates
    bwd = out + 4 * n_views * channels * side * side
    return harness.Case(f"{n_points}p V={n_views} C={channels} {side}^2", n_points * n_views, "point-views", fwd,
                        fwd + bwd)


def calls_for(backend, inputs):
    points, c2w, intrinsics, features = inputs
    leaf = features.clone().requires_grad_()
    cotangent = torch.rand(features.shape[0], points.shape[0], features.shape[1], device=features.device)

    def forward():
        with torch.no_grad():
            return project_features(points, c2w, intrinsics, features, backend=backend)

    def forward_backward():
        project_features(points, c2w, intrinsics, leaf, backend=backend).backward(cotangent)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def run(device="cpu", *, quick=False, only=None):
    cases = QUICK_CASES if quick else (GPU_CASES if torch.device(device).type == "cuda" else CPU_CASES)
    rows = []
    for case in cases:
        inputs = make_inputs(*case, device)
        calls = {b: calls_for(b, inputs) for b in harness.backends_to_run(device, only)}
        rows += harness.measure("project_features", case_for(*case), device, calls)
    return rows


def main(argv=None):
    harness.main("project_features", run, argv)


if __name__ == "__main__":
    main()
