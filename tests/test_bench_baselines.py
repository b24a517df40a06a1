"""The benchmarks' fast_torch baselines compute what the references compute (tiny sizes): a fast
baseline that is wrong would make every speed-up in benchmarks/RESULTS.md meaningless."""

import importlib

import pytest
import torch

from fastnerf import reference
from fastnerf.cli.bench import _benchmarks_package

baselines = importlib.import_module(_benchmarks_package().__name__ + ".baselines")


def contiguous_pack(counts):
    counts = torch.tensor(counts)
    return torch.stack([torch.cumsum(counts, 0) - counts, counts], 1)


@pytest.mark.parametrize("channels", [1, 3, 8])
def test_composite_matches_reference(channels):
    g = torch.Generator().manual_seed(channels)
    packed_info = contiguous_pack([3, 0, 5, 1, 0, 4])
    n_samples = int(packed_info[:, 1].sum())
    sigmas = (torch.rand(n_samples, generator=g, dtype=torch.float64) * 5).requires_grad_()
    values = torch.rand(n_samples, channels, generator=g, dtype=torch.float64).requires_grad_()
    lengths = torch.rand(n_samples, generator=g, dtype=torch.float64) * 0.3
    t_starts = torch.cumsum(lengths, 0) + 1.0
    t_ends = t_starts + lengths
    fast = baselines.composite(sigmas, values, t_starts, t_ends, packed_info)
    ref = reference.composite.composite(sigmas, values, t_starts, t_ends, packed_info)
    assert float(ref[1].detach().max()) > 0.3  # not a trivially empty case
    cotangents = [torch.randn(r.shape, generator=g, dtype=torch.float64) for r in ref]
    for name, a, e in zip(("out", "opacity", "depth", "weights"), fast, ref):
        torch.testing.assert_close(a, e, msg=lambda m: f"{name}: {m}")
    grads_fast = torch.autograd.grad(fast, (sigmas, values), cotangents)
    grads_ref = torch.autograd.grad(ref, (sigmas, values), cotangents)
    for name, a, e in zip(("grad sigmas", "grad values"), grads_fast, grads_ref):
        torch.testing.assert_close(a, e, msg=lambda m: f"{name}: {m}")


def test_hash_encode_matches_reference():
    g = torch.Generator().manual_seed(0)
    # levels N = 2, 4, 8 with T = 64: the first dense, the others hashed; x includes 0, 1 and outside
    x = torch.rand(40, 3, generator=g, dtype=torch.float64) * 1.2 - 0.1
    x[:4] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.25, 1.0], [0.999, 0.0, 0.5]])
    x.requires_grad_()
    table = torch.randn(3, 64, 2, generator=g, dtype=torch.float64, requires_grad=True)
    fast = baselines.hash_encode(x, table, n_min=2, n_max=8)
    ref = reference.hash_encode.hash_encode(x, table, n_min=2, n_max=8)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, e, name in zip(torch.autograd.grad(fast, (x, table), cotangent),
                          torch.autograd.grad(ref, (x, table), cotangent), ("grad x", "grad table")):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")


def test_hash_encode_large_hashed_level_matches_reference():
    # The benchmark's size of table (T = 2^19) and fine levels: int32 hashing must agree with uint32.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 3, generator=g)
    table = torch.randn(4, 2**19, 2, generator=g)
    fast = baselines.hash_encode(x, table, n_min=16, n_max=2048)
    ref = reference.hash_encode.hash_encode(x, table, n_min=16, n_max=2048)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("include_input", [True, False])
def test_freq_encode_matches_reference(include_input):
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    fast = baselines.freq_encode(x, 5, include_input=include_input)
    ref = reference.freq_encode.freq_encode(x, 5, include_input=include_input)
    assert torch.equal(fast, ref)
    cotangent = torch.randn(ref.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(fast, x, cotangent)[0], torch.autograd.grad(ref, x, cotangent)[0])


def _rays(n, seed):
    g = torch.Generator().manual_seed(seed)
    rays_o = (torch.rand(n, 3, generator=g) * 2 - 1) * 2.5
    rays_o[::5] = torch.round(rays_o[::5])  # on faces and edges
    rays_d = torch.randn(n, 3, generator=g)
    rays_d[torch.rand(n, 3, generator=g) < 0.2] = 0.0  # parallel to axes
    return rays_o, rays_d


def test_ray_aabb_bitwise_equal_to_reference():
    rays_o, rays_d = _rays(300, 3)
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    fast = baselines.ray_aabb(rays_o, rays_d, aabb)
    ref = reference.ray_aabb.ray_aabb(rays_o, rays_d, aabb)
    assert ref[2].sum() > 30 and (~ref[2]).sum() > 30  # hits and misses both
    for a, e in zip(fast, ref):
        assert torch.equal(a, e)


@pytest.mark.parametrize("with_offsets", [False, True])
def test_march_rays_bitwise_equal_to_reference(with_offsets):
    rays_o, rays_d = _rays(200, 4)
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    t_near, t_far, _ = reference.ray_aabb.ray_aabb(rays_o, rays_d, aabb)
    occupied = torch.rand(8, 8, 8, generator=torch.Generator().manual_seed(5)) < 0.3
    offsets = torch.rand(200, generator=torch.Generator().manual_seed(6)) if with_offsets else None
    fast = baselines.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, 0.05, offsets)
    ref = reference.march_rays.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, 0.05, offsets)
    assert ref[1].numel() > 100
    for a, e in zip(fast, ref):
        assert torch.equal(a, e)


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_march_rays_contracted_matches_reference(fraction):
    """Closed-form cone steps against the spec's float32 accumulation: the same intervals up to
    rounding (a full grid: every interval; a partial one: the same kept cells but at faces)."""
    g = torch.Generator().manual_seed(8)
    rays_o = torch.rand(50, 3, generator=g) - 0.5
    rays_d = torch.nn.functional.normalize(torch.randn(50, 3, generator=g), dim=1)
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    t_near, t_far = torch.full((50,), 0.05), torch.full((50,), 1e3)
    t_far[:3] = torch.tensor([0.05, 0.5, 2.0])  # empty, linear steps only, both phases
    occupied = torch.rand(8, 8, 8, generator=g) < fraction
    fast = baselines.march_rays_contracted(rays_o, rays_d, t_near, t_far, aabb, occupied, 0.01, 1 / 64)
    ref = reference.march_rays.march_rays(rays_o, rays_d, t_near, t_far, aabb, occupied, 0.01,
                                          contraction="mipnerf360", cone_angle=1 / 64)
    counts_fast, counts_ref = fast[0][:, 1], ref[0][:, 1]
    assert int(counts_ref.sum()) > 1000 and counts_ref[0] == counts_fast[0] == 0
    if fraction == 1.0:
        assert ((counts_fast - counts_ref).abs() <= 1).all()
        equal = counts_fast == counts_ref
        assert equal.float().mean() > 0.8
        in_fast, in_ref = (torch.repeat_interleave(equal, c) for c in (counts_fast, counts_ref))  # those rays' samples
        for column in (1, 2):  # t_starts, t_ends
            torch.testing.assert_close(fast[column][in_fast], ref[column][in_ref], rtol=1e-3, atol=1e-6)
        assert torch.equal(fast[0][:, 0], torch.cumsum(counts_fast, 0) - counts_fast)
    else:
        assert abs(int(counts_fast.sum()) - int(counts_ref.sum())) <= 0.01 * int(counts_ref.sum())


@pytest.mark.parametrize("with_offsets", [False, True])
def test_baked_render_matches_reference(with_offsets):
    # A sparse vertex grid (missing vertices and a row past V add nothing) that is not a cube,
    # over an aabb that is not one either; grid_sample's weights round differently, so close, not equal.
    g = torch.Generator().manual_seed(7)
    aabb = torch.tensor([-1.0, -0.8, -1.2, 1.0, 0.6, 0.9])
    shape = (5, 4, 6)
    n_vertices = shape[0] * shape[1] * shape[2]
    index = torch.randperm(n_vertices, generator=g).reshape(shape).to(torch.int32)
    index[torch.rand(shape, generator=g) < 0.3] = -1
    index[0, 0, 0] = n_vertices + 3
    values = torch.randn(n_vertices, 4, generator=g, dtype=torch.float64)
    values[:, 0] = values[:, 0] * 6 + 3  # some densities negative: clamped
    values.requires_grad_()
    occupied = torch.rand(6, 5, 4, generator=g) < 0.7
    n_rays = 60
    rays_o = torch.randn(n_rays, 3, generator=g) * 0.4 + torch.tensor([0.0, 0.0, -3.0])
    rays_d = torch.randn(n_rays, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 1.0])
    t_near, t_far, _ = reference.ray_aabb.ray_aabb(rays_o, rays_d, aabb)
    offsets = torch.rand(n_rays, generator=g) if with_offsets else None
    args = (rays_o, rays_d, t_near, t_far, offsets, aabb, occupied)
    # the user's dense grid, made from the values so that gradients reach them through it
    fast = baselines.baked_render(*args, baselines.dense_grid(index, values), 0.05, 0.0)
    ref = reference.baked_render.baked_render(*args, index, values, 0.05, 0.0)
    assert float(ref[1].detach().max()) > 0.5 and float(ref[1].detach().min()) == 0.0  # opaque rays and misses
    for name, a, e in zip(("features", "opacity", "depth"), fast, ref):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")
    cotangents = [torch.randn(r.shape, generator=g, dtype=torch.float64) for r in ref]
    grad_fast, = torch.autograd.grad(fast, values, cotangents)
    grad_ref, = torch.autograd.grad(ref, values, cotangents)
    assert int((grad_ref != 0).any(1).sum()) > 20
    torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-5, atol=1e-5)
