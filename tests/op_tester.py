"""Pieces every op test reuses: devices and backends under test, packed-sample layouts drawn by
hypothesis, and comparison helpers with messages that say what differed."""

import torch
from hypothesis import strategies as st

import fastnerf

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# The Triton interpreter runs kernels in numpy: keep its problems small.
INTERPRETED_MAX = {"rays": 12, "samples_per_ray": 10}


def fast_backends(device):
    """Every available backend on `device` except the reference itself."""
    return [name for name in fastnerf.backends.available(device) if name != "torch"]


def device_backend_pairs():
    """(device, backend) for every fast backend on every device here, for parametrize."""
    return [(device, backend) for device in DEVICES for backend in fast_backends(device)]


def interpreted(device, backend) -> bool:
    return backend == "triton" and torch.device(device).type == "cpu"


@st.composite
def packs(draw, max_rays=40, max_samples_per_ray=30, index_dtypes=(torch.int32, torch.int64)):
    """A packed layout: dict(counts [N], packed_info [N, 2], n_samples).

    Draws empty packs, rays with zero samples, gaps of samples that no ray covers, and rays
    stored out of order (starts not monotone), all of which the ops must handle.
    """
    n_rays = draw(st.integers(0, max_rays))
    counts = draw(st.lists(st.integers(0, max_samples_per_ray), min_size=n_rays, max_size=n_rays))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n_rays, max_size=n_rays)) if draw(st.booleans()) else [0] * n_rays
    order = draw(st.permutations(range(n_rays))) if draw(st.booleans()) else list(range(n_rays))
    starts = [0] * n_rays
    cursor = 0
    for ray in order:  # lay rays out in `order`, each after an optional gap
        cursor += gaps[ray]
        starts[ray] = cursor
        cursor += counts[ray]
    index_dtype = draw(st.sampled_from(index_dtypes))
    packed_info = torch.tensor([[s, c] for s, c in zip(starts, counts)], dtype=index_dtype).reshape(n_rays, 2)
    return dict(counts=counts, packed_info=packed_info, n_samples=cursor)


def sorted_intervals(n_samples, packed_info, generator, dtype=torch.float32, zero_length_fraction=0.0):
    """t_starts, t_ends [S]: increasing within each ray; some zero-length if asked."""
    lengths = torch.rand(n_samples, generator=generator, dtype=torch.float64) * 0.2 + 0.01
    if zero_length_fraction:
        lengths[torch.rand(n_samples, generator=generator) < zero_length_fraction] = 0.0
    gaps = torch.rand(n_samples, generator=generator, dtype=torch.float64) * 0.1
    t_starts = torch.zeros(n_samples, dtype=torch.float64)
    t_ends = torch.zeros(n_samples, dtype=torch.float64)
    for start, count in packed_info.tolist():
        t = float(torch.rand(1, generator=generator)) * 2.0
        for i in range(start, start + count):
            t_starts[i] = t + gaps[i]
            t_ends[i] = t_starts[i] + lengths[i]
            t = float(t_ends[i])
    return t_starts.to(dtype), t_ends.to(dtype)


def non_contiguous(x: torch.Tensor) -> torch.Tensor:
    """The same values in a strided (non-contiguous) view."""
    if x.dim() == 0:
        return x
    wide = torch.empty(*x.shape[:-1], x.shape[-1] * 2, dtype=x.dtype, device=x.device)
    wide[..., ::2] = x
    return wide[..., ::2]


def assert_close(actual, expected, *, what, rtol, atol):
    """torch.testing.assert_close with the name of what differed."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def random_cotangents(outputs, generator):
    """One random cotangent per output, for comparing vector-Jacobian products."""
    return [torch.randn(o.shape, generator=generator, dtype=o.dtype).to(o.device) for o in outputs]


def vjp(outputs, inputs, cotangents):
    """Gradients of sum(<cotangent, output>) w.r.t. inputs (zeros where unused)."""
    loss = sum((o * c).sum() for o, c in zip(outputs, cotangents))
    return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


def backend_params():
    """pytest params (device, backend) for the fast backends here; CUDA ones carry the gpu mark."""
    import pytest

    return [
        pytest.param(device, backend, id=f"{device}-{backend}", marks=[pytest.mark.gpu] if device == "cuda" else [])
        for device, backend in device_backend_pairs()
    ]


BOXES = [(-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), (-0.5, 0.0, -2.0, 1.5, 0.75, 1.0)]


@st.composite
def ray_batches(draw, max_rays=40):
    """dict(rays_o [N, 3], rays_d [N, 3], aabb [6]) around a box: origins inside and outside,
    origins snapped to a lattice of cell faces, direction components exactly 0 (rays parallel to
    axes), zero directions, and rays that miss."""
    n_rays = draw(st.integers(0, max_rays))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    box = torch.tensor(draw(st.sampled_from(BOXES)))
    lo, hi = box[:3], box[3:]
    spread = draw(st.sampled_from([0.4, 1.5, 3.0]))  # 0.4: every origin inside the box
    unit = torch.rand(n_rays, 3, generator=g) * 2 - 1
    rays_o = (lo + hi) / 2 + unit * spread * (hi - lo) / 2
    if draw(st.booleans()):  # on cell faces of an 8-cell lattice: ties at faces
        rays_o = lo + torch.round((rays_o - lo) / (hi - lo) * 8) / 8 * (hi - lo)
    rays_d = torch.randn(n_rays, 3, generator=g)
    rays_d[torch.rand(n_rays, 3, generator=g) < draw(st.sampled_from([0.0, 0.3, 0.7]))] = 0.0
    return dict(rays_o=rays_o.float(), rays_d=rays_d.float(), aabb=box.float())
