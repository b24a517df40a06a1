"""hash_encode on the CPU: the C++ kernels against the best plain PyTorch, side by side in one run,
with 1 and 2 threads, at the benchmark's size (T = 2^19) and the teacher's (T = 2^15).

    python -m benchmarks.profile_hash_cpu [--points 262144] [--repeats 5] [--threads 1,2]

"fast torch" is the vectorised PyTorch a user would write: all 8 corners of every point on every
level gathered in one index_select, autograd scattering the gradient (benchmarks/baselines.py
where that file exists, else the same algorithm below). fwd+bwd asks for the gradients of x and
of the table, as bench_hash_encode does. Each figure is the median of `repeats` calls, with the
fastest in brackets: on a shared machine the fastest is the better estimate of the kernel's cost.
"""

import argparse
import statistics
import time

import torch

from fastnerf.ops import hash_encode
from fastnerf.reference.hash_encode import PRIMES, is_dense, level_resolutions

N_MIN = 16
CASES = [  # (label, log2 T, n_max): the benchmark's grid and the teacher's (100x100 images: n_max 192)
    ("bench T=2^19", 19, 2048),
    ("teacher T=2^15", 15, 192),
]


def _local_fast_torch(x, table, *, n_min, n_max):  # [N, 3], [L, T, F] -> [N, L*F]
    n_levels, table_size, features = table.shape
    resolutions = level_resolutions(n_levels, n_min, n_max)
    res = torch.tensor(resolutions, dtype=x.dtype)  # [L]
    pos = x.clamp(0, 1)[:, None, :] * res[:, None]  # [N, L, 3]
    lower = torch.minimum(pos.floor(), (res - 1)[:, None])
    frac = pos - lower
    vertex = lower.to(torch.int32)
    low_high = torch.stack([vertex, vertex + 1], -1)  # [N, L, 3, 2]
    weights = torch.stack([1 - frac, frac], -1)  # [N, L, 3, 2]
    wx, wy, wz = weights.unbind(2)
    blend = (wz[..., :, None, None] * wy[..., None, :, None] * wx[..., None, None, :]).flatten(2)  # [N, L, 8]
    side = torch.tensor([r + 1 for r in resolutions], dtype=torch.int32)[:, None]  # [L, 1]
    dense = torch.tensor([is_dense(r, table_size) for r in resolutions])[:, None]  # [L, 1]
    px, py, pz = (p if p < 2**31 else p - 2**32 for p in PRIMES)  # int32 products wrap like uint32
    cx, cy, cz = low_high.unbind(2)  # [N, L, 2]
    y_term = torch.where(dense, cy * side, cy * py)
    z_term = torch.where(dense, cz * side * side, cz * pz)
    summed = z_term[..., :, None, None] + y_term[..., None, :, None] + cx[..., None, None, :] * px
    hashed = (z_term[..., :, None, None] ^ y_term[..., None, :, None] ^ cx[..., None, None, :]) & (table_size - 1)
    rows = torch.where(dense[..., None, None], summed, hashed).flatten(2)  # [N, L, 8]
    rows = rows + (torch.arange(n_levels, dtype=torch.int32) * table_size)[:, None]
    values = table.reshape(-1, features).index_select(0, rows.flatten().long()).view(*rows.shape, features)
    return (blend[..., None] * values).sum(2).reshape(x.shape[0], n_levels * features)


def fast_torch():
    try:
        from benchmarks.baselines import hash_encode as baseline
    except ImportError:
        return _local_fast_torch
    return baseline


def timed(fn, repeats):
    fn()  # warm-up: first-touch page faults, thread pool start
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def calls(encode, x, table, n_max):
    x_grad, table_grad = x.clone().requires_grad_(), table.clone().requires_grad_()
    with torch.no_grad():
        cotangent = torch.rand_like(encode(x, table, n_min=N_MIN, n_max=n_max))

    def forward():
        with torch.no_grad():
            encode(x, table, n_min=N_MIN, n_max=n_max)

    def forward_backward():
        out = encode(x_grad, table_grad, n_min=N_MIN, n_max=n_max)
        torch.autograd.grad(out, (x_grad, table_grad), cotangent)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1 << 18)
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    baseline = fast_torch()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.points, 3, generator=g)
    print(f"hash_encode, {args.points} points, L={args.levels}, F=2, n_min={N_MIN}; torch {torch.__version__}; "
          f"fast torch from {'benchmarks.baselines' if baseline is not _local_fast_torch else 'this script'}")
    print("| case | threads | pass | fast torch ms | cpp ms | cpp speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, log2_t, n_max in CASES:
        table = torch.rand(args.levels, 2**log2_t, 2, generator=g) * 2e-4 - 1e-4
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            ours = calls(lambda *a, **k: hash_encode(*a, **k, backend="cpp"), x, table, n_max)
            theirs = calls(baseline, x, table, n_max)
            for name in ("fwd", "fwd+bwd"):
                (t_med, t_min), (c_med, c_min) = timed(theirs[name], args.repeats), timed(ours[name], args.repeats)
                print(f"| {label} | {threads} | {name} | {t_med * 1e3:.1f} ({t_min * 1e3:.1f}) | "
                      f"{c_med * 1e3:.1f} ({c_min * 1e3:.1f}) | {t_med / c_med:.1f}x ({t_min / c_min:.1f}x) |", flush=True)


if __name__ == "__main__":
    main()
