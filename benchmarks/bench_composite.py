"""composite: rays x samples x channels, forward and forward+backward, every backend beside the
reference and the copy-bandwidth floor.  python -m benchmarks.bench_composite [--device cuda]"""

import torch

from fastnerf.ops import composite

from . import baselines, harness

# (rays, samples per ray, channels): colour at training batch size; the hybrid renderer's
# 128-channel features (16x16 pixels per view, 32 samples, a batch of views).
CPU_CASES = [(65536, 64, 3), (8192, 32, 128)]
GPU_CASES = [(1 << 20, 64, 3), (65536, 32, 128)]
QUICK_CASES = [(4096, 16, 3), (512, 8, 128)]


def make_inputs(n_rays, samples_per_ray, channels, device):
    g = torch.Generator().manual_seed(0)
    S = n_rays * samples_per_ray
    counts = torch.full((n_rays,), samples_per_ray, dtype=torch.int32)
    starts = (torch.arange(n_rays, dtype=torch.int32) * samples_per_ray)
    packed_info = torch.stack([starts, counts], 1)
    sigmas = torch.rand(S, generator=g) * 10
    values = torch.rand(S, channels, generator=g)
    t_starts = (torch.arange(S) % samples_per_ray).float() * 0.01 + 2.0
    t_ends = t_starts + 0.01
    return [x.to(device) for x in (sigmas, values, t_starts, t_ends, packed_info)]


def case_for(n_rays, samples_per_ray, channels) -> harness.Case:
    S, N, C = n_rays * samples_per_ray, n_rays, channels
    fwd = 4 * (S * (3 + C + 1) + N * (C + 2)) + 8 * N
    bwd = 4 * (S * (5 + 2 * C) + N * (2 * C + 4)) + 8 * N
    return harness.Case(f"{N}x{samples_per_ray} C={C}", S, "samples", fwd, fwd + bwd)


def calls_for(backend, inputs):
    sigmas, values, t_starts, t_ends, packed_info = inputs
    s, v = sigmas.clone().requires_grad_(), values.clone().requires_grad_()
    run_op = harness.op_for(backend, composite, baselines.composite)
    with torch.no_grad():
        cotangents = [torch.rand_like(o) for o in run_op(*inputs)]

    def forward():
        with torch.no_grad():
            return run_op(sigmas, values, t_starts, t_ends, packed_info)

    def forward_backward():
        outputs = run_op(s, v, t_starts, t_ends, packed_info)
        torch.autograd.backward(outputs, cotangents)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def run(device="cpu", *, quick=False, only=None):
    cases = QUICK_CASES if quick else (GPU_CASES if torch.device(device).type == "cuda" else CPU_CASES)
    rows = []
    for n_rays, samples, channels in cases:
        inputs = make_inputs(n_rays, samples, channels, device)
        calls = {b: calls_for(b, inputs) for b in harness.backends_to_run(device, only)}
        rows += harness.measure("composite", case_for(n_rays, samples, channels), device, calls)
    return rows


def main(argv=None):
    harness.main("composite", run, argv)


if __name__ == "__main__":
    main()
