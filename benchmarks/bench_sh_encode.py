"""sh_encode: real spherical harmonics of view directions (degree 4, 16 outputs), forward and
forward+backward, every backend beside the reference and the copy floor.  python -m benchmarks.bench_sh_encode

Floor: forward reads the [N, 3] directions and writes the [N, degree^2] output; backward reads
grad_out and the directions and writes grad_directions.
"""

import torch

from fastnerf.ops import sh_encode

from . import baselines, harness

# (directions, degree): an inference chunk of a baked render's pixels, and a training batch.
CPU_CASES = [(3000, 4), (1 << 18, 4)]
GPU_CASES = [(1 << 22, 4)]
QUICK_CASES = [(3000, 4)]


def case_for(n_points, degree) -> harness.Case:
    width = degree * degree
    fwd = 4 * n_points * (3 + width)
    bwd = 4 * n_points * (width + 2 * 3)
    return harness.Case(f"{n_points}x3 degree={degree}", n_points, "points", fwd, fwd + bwd)


def calls_for(backend, directions, degree):
    directions_grad = directions.clone().requires_grad_()
    run_op = harness.op_for(backend, sh_encode, baselines.sh_encode)
    with torch.no_grad():
        cotangent = torch.rand_like(run_op(directions, degree))

    def forward():
        with torch.no_grad():
            return run_op(directions, degree)

    def forward_backward():
        torch.autograd.grad(run_op(directions_grad, degree), directions_grad, cotangent)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def run(device="cpu", *, quick=False, only=None):
    cases = QUICK_CASES if quick else (GPU_CASES if torch.device(device).type == "cuda" else CPU_CASES)
    rows = []
    for n_points, degree in cases:
        g = torch.Generator().manual_seed(0)
        directions = torch.nn.functional.normalize(torch.randn(n_points, 3, generator=g), dim=-1).to(device)
        calls = {b: calls_for(b, directions, degree) for b in harness.backends_to_run(device, only)}
        rows += harness.measure("sh_encode", case_for(n_points, degree), device, calls)
    return rows


def main(argv=None):
    harness.main("sh_encode", run, argv)


if __name__ == "__main__":
    main()
