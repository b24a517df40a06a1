"""The `fast_torch` baselines: the fastest plain PyTorch we could write for each op, what a user
without this package would write to do the same job. Every speed-up `fastnerf bench` prints is
against these ("x fast"); the readable references (fastnerf.reference, the "torch" backend) are
timed beside them, labelled "x ref".

Same results as the references (tests/test_bench_baselines.py checks them), but written for
speed where we found speed: float32 and int32 where they suffice, each gather done once, sums
over segments by segment_reduce instead of scatters. They assume what the benchmarks (and
fastnerf's own pipeline) give them: a contiguous, ray-major pack (march_rays' output) and valid
inputs; they check nothing. Where the reference's own form measured fastest (freq_encode,
march_rays, sh_encode), the baseline is the reference, and says so.
"""

import torch

from fastnerf.reference.composite import composite as reference_composite
from fastnerf.reference.freq_encode import freq_encode as reference_freq_encode
from fastnerf.reference.hash_encode import PRIMES, is_dense, level_resolutions
from fastnerf.reference.march_rays import march_rays as reference_march_rays
from fastnerf.reference.march_rays import occupied_at
from fastnerf.reference.sh_encode import sh_encode as reference_sh_encode


# ---- composite ------------------------------------------------------------------------------


def composite(
    sigmas: torch.Tensor,  # [S]
    values: torch.Tensor,  # [S, C]
    t_starts: torch.Tensor,  # [S]
    t_ends: torch.Tensor,  # [S]
    packed_info: torch.Tensor,  # [N, 2], contiguous and ray-major: start_r = sum of earlier counts
):
    """(out [N, C], opacity [N], depth [N], weights [S]). The optical depth is one cumulative
    sum over the whole pack (float64, so it stays exact at millions of samples) minus each ray's
    offset; per-ray sums are segment_reduce over the counts."""
    counts = packed_info[:, 1].long()
    n_samples = sigmas.shape[0]
    tau = sigmas * (t_ends - t_starts)  # [S]
    inclusive = torch.cumsum(tau, 0, dtype=torch.float64)
    ray_ids = torch.repeat_interleave(torch.arange(counts.shape[0], device=sigmas.device), counts,
                                      output_size=n_samples)
    # exclusive sum at each ray's first sample: inclusive - tau there, i.e. inclusive before it
    before_ray = torch.cat([inclusive.new_zeros(1), inclusive])[torch.cumsum(counts, 0) - counts]
    transmittance = torch.exp((before_ray[ray_ids] - inclusive).to(sigmas.dtype) + tau)  # e^-(exclusive)
    weights = transmittance * -torch.expm1(-tau)  # [S]
    mids = (t_starts + t_ends) * 0.5
    per_sample = torch.cat([weights[:, None] * values, weights[:, None], (weights * mids)[:, None]], 1)
    sums = torch.segment_reduce(per_sample, "sum", lengths=counts, unsafe=True)  # [N, C + 2]
    channels = values.shape[1]
    return sums[:, :channels], sums[:, channels], sums[:, channels + 1], weights


# ---- hash_encode ----------------------------------------------------------------------------


def hash_encode(
    x: torch.Tensor,  # [N, 3] in [0, 1]
    table: torch.Tensor,  # [L, T, F]
    *,
    n_min: float,
    n_max: float,
) -> torch.Tensor:  # [N, L * F]
    """All 8 corners of every point on every level in one gather (rows of the flattened table;
    the backward of index_select is one scatter-add, the fastest of the gathers autograd offers
    on the CPU), blended by one batched [1, 8] x [8, F] matmul (2x a multiply-and-sum). Levels
    are dense up to some level and hashed after it (resolutions grow), so each group computes
    only its own rows; hashing in int32 (the low bits of a wrapped int32 product are those of
    the uint32 one)."""
    n_levels, table_size, features = table.shape
    resolutions = level_resolutions(n_levels, n_min, n_max)
    n_dense = sum(is_dense(r, table_size) for r in resolutions)  # the first n_dense levels
    device = x.device
    res = torch.tensor(resolutions, dtype=x.dtype, device=device)  # [L]
    pos = x.clamp(0, 1)[:, None, :] * res[:, None]  # [N, L, 3]
    lower = torch.minimum(pos.floor(), (res - 1)[:, None])  # [N, L, 3]
    frac = pos - lower
    # per axis: the (lower, upper) vertex coordinate and its weight (1 - w, w): [N, L, 3, 2]
    corner = lower.to(torch.int32)
    coords = torch.stack([corner, corner + 1], -1)
    wx, wy, wz = torch.stack([1 - frac, frac], -1).unbind(2)  # [N, L, 2] each
    blend = (wz[..., :, None, None] * wy[..., None, :, None] * wx[..., None, None, :]).flatten(2)  # [N, L, 8]: (z, y, x)
    cx, cy, cz = coords.unbind(2)  # [N, L, 2] each

    def corner_rows(x_part, y_part, z_part, combine):  # [N, l, 2] each -> [N, l, 8], corners (z, y, x)
        return combine(combine(z_part[..., :, None, None], y_part[..., None, :, None]), x_part[..., None, None, :]).flatten(2)

    side = torch.tensor([r + 1 for r in resolutions[:n_dense]], dtype=torch.int32, device=device)[:, None]  # [l, 1]
    dense_rows = corner_rows(cx[:, :n_dense], cy[:, :n_dense] * side, cz[:, :n_dense] * (side * side), torch.add)
    primes = [p if p < 2**31 else p - 2**32 for p in PRIMES]  # the uint32 primes as int32
    hashed_rows = corner_rows(cx[:, n_dense:], cy[:, n_dense:] * primes[1], cz[:, n_dense:] * primes[2],
                              torch.bitwise_xor) & (table_size - 1)
    rows = torch.cat([dense_rows, hashed_rows], 1)  # [N, L, 8]
    rows = rows + (torch.arange(n_levels, dtype=torch.int32, device=device) * table_size)[:, None]
    flat = table.reshape(n_levels * table_size, features)
    # int64 rows: with int32 ones the backward takes a 2.5x slower index_add path (torch 2.13, CPU)
    values = flat.index_select(0, rows.flatten().long()).view(*rows.shape, features)  # [N, L, 8, F]
    out = torch.matmul(blend.to(table.dtype).unsqueeze(-2), values).squeeze(-2)  # [N, L, F]
    return out.reshape(x.shape[0], n_levels * features)


# ---- freq_encode ----------------------------------------------------------------------------


def freq_encode(x: torch.Tensor, n_freqs: int, *, include_input: bool = True) -> torch.Tensor:
    """The reference's own form (one broadcast multiply, sin and cos stacked into the output's
    layout, one cat) is already the fastest plain PyTorch we found: writing the sin and cos
    blocks by a cat instead of a stack measured 6-15% slower (1 thread, 2^18 x 3, 10 freqs)."""
    return reference_freq_encode(x, n_freqs, include_input=include_input)


# ---- sh_encode ------------------------------------------------------------------------------


def sh_encode(directions: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """The reference's own form (the products of each band, one stack) is the fastest plain
    PyTorch we found: the degree <= 3 monomials stacked and multiplied by one constant [20, 16]
    matrix measured 1.5-1.8x slower forward (2 threads, 3000 and 2^18 directions, degree 4) and
    1.7x slower forward+backward at 2^18 (faster only at 3000, where per-op overhead dominates)."""
    return reference_sh_encode(directions, degree)


# ---- ray_aabb -------------------------------------------------------------------------------


def ray_aabb(
    rays_o: torch.Tensor,  # [N, 3]
    rays_d: torch.Tensor,  # [N, 3]
    aabb: torch.Tensor,  # [6]
):
    """(t_near [N], t_far [N], hit [N] bool): the slab method on [N, 3] at once; an axis the ray
    runs parallel to is all-or-nothing (no division by zero, so no NaN), with scalar fills
    instead of full-size infinity tensors."""
    lo, hi = aabb[:3], aabb[3:]
    parallel = rays_d == 0
    safe_d = torch.where(parallel, 1.0, rays_d)
    t_lo = (lo - rays_o) / safe_d
    t_hi = (hi - rays_o) / safe_d
    inside_slab = (rays_o >= lo) & (rays_o <= hi)
    slab_open = torch.where(inside_slab, float("inf"), float("-inf"))  # parallel ray: all or nothing
    t_enter = torch.where(parallel, -slab_open, torch.minimum(t_lo, t_hi)).amax(1).clamp_min(0.0)
    t_exit = torch.where(parallel, slab_open, torch.maximum(t_lo, t_hi)).amin(1)
    hit = (t_exit > t_enter) & t_exit.isfinite() & rays_o.isfinite().all(1) & rays_d.isfinite().all(1)
    return torch.where(hit, t_enter, 0.0), torch.where(hit, t_exit, 0.0), hit


# ---- march_rays -----------------------------------------------------------------------------


def march_rays(
    rays_o: torch.Tensor,  # [N, 3]
    rays_d: torch.Tensor,  # [N, 3]
    t_near: torch.Tensor,  # [N]
    t_far: torch.Tensor,  # [N]
    aabb: torch.Tensor,  # [6]
    occupied: torch.Tensor,  # [Rx, Ry, Rz] bool
    step_size: float,
    offsets: torch.Tensor = None,  # [N] or None
):
    """The reference's own form: every candidate interval of a chunk of rays at once, chunks of
    at most 2^22 candidates. Materialising every candidate of every ray at once (65,536 rays,
    about 40 M candidates) measured 1.4x slower: the temporaries no longer fit in any cache."""
    return reference_march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets)


def march_rays_contracted(
    rays_o: torch.Tensor,  # [N, 3]
    rays_d: torch.Tensor,  # [N, 3]
    t_near: torch.Tensor,  # [N]
    t_far: torch.Tensor,  # [N]
    aabb: torch.Tensor,  # [6] the inner box; the grid covers the contracted cube [-2, 2]^3
    occupied: torch.Tensor,  # [Rx, Ry, Rz] bool
    step_size: float,
    cone_angle: float,  # > 0; no max_step, no offsets
    chunk: int = 1 << 22,
):
    """Cone-stepped marching through a contracted grid as a user writes it without a loop over
    steps: each ray's interval starts in closed form, t0 + m step while t < step / cone_angle,
    then geometric, g (1 + cone_angle)^k, every candidate of a chunk of rays at once, kept by
    the contracted occupancy lookup. The same intervals as the spec's float32 accumulation up to
    rounding (close, not bitwise)."""
    n_rays, device = t_near.shape[0], t_near.device
    t_linear = step_size / cone_angle
    linear = torch.ceil((torch.clamp(t_far, max=t_linear) - t_near).clamp(min=0) / step_size)
    geometric_start = t_near + linear * step_size
    growth = torch.log1p(torch.tensor(cone_angle, dtype=torch.float32, device=device))
    geometric = torch.where(t_far > geometric_start, torch.ceil(torch.log(t_far / geometric_start) / growth),
                            torch.zeros_like(t_far))
    counts = (linear + geometric).long()
    cumulative = torch.cumsum(counts, 0)
    kept_counts, t_starts, t_ends = [], [], []
    begin = 0
    while begin < n_rays:  # chunks of rays with at most `chunk` candidates (or one ray)
        before = int(cumulative[begin - 1]) if begin else 0
        end = min(max(int(torch.searchsorted(cumulative, before + chunk, right=True)), begin + 1), n_rays)
        part_counts = counts[begin:end]
        ray_ids = torch.repeat_interleave(torch.arange(begin, end, device=device), part_counts)
        m = torch.arange(ray_ids.shape[0], device=device) - (torch.cumsum(part_counts, 0) - part_counts)[ray_ids - begin]

        def start_of(m, rays=ray_ids):
            n_linear = linear[rays]
            return torch.where(m < n_linear, t_near[rays] + m * step_size,
                               geometric_start[rays] * torch.exp((m - n_linear) * growth))

        starts = start_of(m.float())
        ends = torch.minimum(start_of(m.float() + 1), t_far[ray_ids])
        mids = (starts + ends) * 0.5
        keep = occupied_at(torch.addcmul(rays_o[ray_ids], rays_d[ray_ids], mids[:, None]), aabb, occupied,
                           "mipnerf360")
        kept_counts.append(torch.bincount(ray_ids[keep] - begin, minlength=end - begin))
        t_starts.append(starts[keep]), t_ends.append(ends[keep])
        begin = end
    kept = torch.cat(kept_counts) if kept_counts else counts
    packed_info = torch.stack([torch.cumsum(kept, 0) - kept, kept], 1)
    return packed_info, torch.cat(t_starts) if t_starts else t_near[:0], torch.cat(t_ends) if t_ends else t_near[:0]


# ---- baked_render ---------------------------------------------------------------------------


def dense_grid(
    index: torch.Tensor,  # [Gx, Gy, Gz] int32, -1 (or >= V) where nothing is stored
    values: torch.Tensor,  # [V, 1+F]
) -> torch.Tensor:  # [1, 1+F, Gz, Gy, Gx]: grid_sample's (N, C, D, H, W), x the fastest axis
    """The sparse vertex grid as a dense one, missing vertices 0: one gather of rows of values
    (differentiable: its backward is one scatter-add into values). The result is a view with
    the channels innermost, the layout grid_sample's CPU kernel reads fastest (8 corners x C
    contiguous)."""
    n_rows, channels = values.shape
    gx, gy, gz = index.shape
    rows = index.permute(2, 1, 0).reshape(-1).long()  # z-major: [Gz * Gy * Gx]
    rows = torch.where((rows >= 0) & (rows < n_rows), rows, n_rows)  # row V: the zero row
    padded = torch.cat([values, values.new_zeros(1, channels)])
    return padded.index_select(0, rows).T.reshape(1, channels, gz, gy, gx)


def baked_render(
    rays_o: torch.Tensor,  # [N, 3]
    rays_d: torch.Tensor,  # [N, 3]
    t_near: torch.Tensor,  # [N]
    t_far: torch.Tensor,  # [N]
    offsets: torch.Tensor,  # [N] or None
    aabb: torch.Tensor,  # [6]
    occupied: torch.Tensor,  # [Rx, Ry, Rz] bool
    grid: torch.Tensor,  # [1, 1+F, Gz, Gy, Gx]: the scene as a dense grid (dense_grid), the user's parameter
    step_size: float,
    early_stop_eps: float = 0.0,
):
    """(features [N, F], opacity [N], depth [N]): what a user writes with plain PyTorch, keeping
    the scene as a dense grid (built once by ``dense_grid``, not timed): ``grid_sample``
    (trilinear, align_corners: vertex i at lo + i (hi - lo) / (G - 1)) at the march_rays sample
    midpoints, then the fastest composite above.
    No early termination: every sample is composited (``early_stop_eps`` is ignored), which
    the spec allows to differ by at most early_stop_eps times the largest feature."""
    del early_stop_eps
    n_rays = rays_o.shape[0]
    packed_info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, step_size, offsets)
    counts = packed_info[:, 1]
    n_samples = t_starts.shape[0]
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=rays_o.device), counts, output_size=n_samples)
    mids = (t_starts + t_ends) * 0.5
    points = torch.addcmul(rays_o[ray_ids], rays_d[ray_ids], mids[:, None])  # [S, 3]
    lo, hi = aabb[:3], aabb[3:]
    normalized = torch.addcmul(lo.new_tensor(-1.0), points - lo, 2.0 / (hi - lo))  # [-1, 1] across the aabb
    sampled = torch.nn.functional.grid_sample(
        grid, normalized.to(grid.dtype).view(1, 1, 1, n_samples, 3), mode="bilinear",
        padding_mode="border", align_corners=True,
    ).view(grid.shape[1], n_samples)  # [1+F, S]
    sigmas = sampled[0].clamp_min(0.0)
    features, opacity, depth, _ = composite(sigmas, sampled[1:].T, t_starts, t_ends, packed_info)
    return features, opacity, depth
