"""hash_encode: Instant-NGP grid (16 levels, F=2, T=2^19), forward and forward+backward, every
backend beside the reference and the gather-bound floor.  python -m benchmarks.bench_hash_encode

Floor (fewest bytes per point): forward reads x (12 B) and 8 corners x L x F table entries
(4 B each) and writes L x F outputs; backward reads grad_out and x, read-modify-writes the
8 x L x F table-gradient entries and writes grad_x, plus zeroing the [L, T, F] gradient once.
Random gathers move whole cache lines, so real kernels sit well under the copy bandwidth.
"""

import torch

from fastnerf.ops import hash_encode

from . import baselines, harness

# (points, levels, log2 T, features)
CPU_CASES = [(1 << 18, 16, 19, 2)]
GPU_CASES = [(1 << 22, 16, 19, 2)]
QUICK_CASES = [(4096, 8, 14, 2)]
N_MIN, N_MAX = 16, 2048


def make_inputs(n_points, n_levels, log2_t, features, device):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_points, 3, generator=g)
    table = torch.rand(n_levels, 2**log2_t, features, generator=g) * 2e-4 - 1e-4
    return x.to(device), table.to(device)


def case_for(n_points, n_levels, log2_t, features) -> harness.Case:
    N, L, F, T = n_points, n_levels, features, 2**log2_t
    fwd = N * (12 + 8 * L * F * 4 + L * F * 4)
    bwd = N * (L * F * 4 + 12 + 2 * 8 * L * F * 4 + 12) + L * T * F * 4
    return harness.Case(f"{N} pts L={L} T=2^{log2_t} F={F}", N, "points", fwd, fwd + bwd)


def calls_for(backend, x, table):
    x_grad, table_grad = x.clone().requires_grad_(), table.clone().requires_grad_()
    run_op = harness.op_for(backend, hash_encode, baselines.hash_encode)
    with torch.no_grad():
        cotangent = torch.rand_like(run_op(x, table, n_min=N_MIN, n_max=N_MAX))

    def forward():
        with torch.no_grad():
            return run_op(x, table, n_min=N_MIN, n_max=N_MAX)

    def forward_backward():
        out = run_op(x_grad, table_grad, n_min=N_MIN, n_max=N_MAX)
        torch.autograd.grad(out, (x_grad, table_grad), cotangent)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def run(device="cpu", *, quick=False, only=None):
    cases = QUICK_CASES if quick else (GPU_CASES if torch.device(device).type == "cuda" else CPU_CASES)
    rows = []
    for case in cases:
        x, table = make_inputs(*case, device)
        calls = {b: calls_for(b, x, table) for b in harness.backends_to_run(device, only)}
        rows += harness.measure("hash_encode", case_for(*case), device, calls)
    return rows


def main(argv=None):
    harness.main("hash_encode", run, argv)


if __name__ == "__main__":
    main()
