"""freq_encode: NeRF's positional encoding (D=3, 10 frequencies), forward and forward+backward,
every backend beside the reference and the copy floor.  python -m benchmarks.bench_freq_encode

Floor: forward reads x and writes the [N, D (1 + 2 n)] output; backward reads grad_out and x
and writes grad_x.
"""

import torch

from fastnerf.ops import freq_encode

from . import baselines, harness

# (points, dims, n_freqs): NeRF positions (10 frequencies) and view directions (4).
CPU_CASES = [(1 << 18, 3, 10), (1 << 18, 3, 4)]
GPU_CASES = [(1 << 22, 3, 10), (1 << 22, 3, 4)]
QUICK_CASES = [(4096, 3, 10)]


def case_for(n_points, dims, n_freqs) -> harness.Case:
    width = dims * (1 + 2 * n_freqs)
    fwd = 4 * n_points * (dims + width)
    bwd = 4 * n_points * (width + 2 * dims)
    return harness.Case(f"{n_points}x{dims} n_freqs={n_freqs}", n_points, "points", fwd, fwd + bwd)


def calls_for(backend, x, n_freqs):
    x_grad = x.clone().requires_grad_()
    run_op = harness.op_for(backend, freq_encode, baselines.freq_encode)
    with torch.no_grad():
        cotangent = torch.rand_like(run_op(x, n_freqs))

    def forward():
        with torch.no_grad():
            return run_op(x, n_freqs)

    def forward_backward():
        torch.autograd.grad(run_op(x_grad, n_freqs), x_grad, cotangent)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def run(device="cpu", *, quick=False, only=None):
    cases = QUICK_CASES if quick else (GPU_CASES if torch.device(device).type == "cuda" else CPU_CASES)
    rows = []
    for n_points, dims, n_freqs in cases:
        x = (torch.rand(n_points, dims, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
        calls = {b: calls_for(b, x, n_freqs) for b in harness.backends_to_run(device, only)}
        rows += harness.measure("freq_encode", case_for(n_points, dims, n_freqs), device, calls)
    return rows


def main(argv=None):
    harness.main("freq_encode", run, argv)


if __name__ == "__main__":
    main()
