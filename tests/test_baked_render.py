"""baked_render: the reference by hand; every backend against it (hypothesis); march_rays'
samples; non-contiguous inputs; gradients (gradcheck, cotangents); a deterministic CPU backward;
opcheck; the grid changing between calls; an inference-mode grid; an empty grid; bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnerf
from fastnerf import reference
from fastnerf.ops import baked_render, composite, march_rays, ray_aabb
from op_tester import (
    BOXES,
    INTERPRETED_MAX,
    assert_close,
    backend_params,
    interpreted,
    non_contiguous,
    random_cotangents,
    ray_batches,
    vjp,
)

OUTPUTS = ("features", "opacity", "depth")
CHANNELS = (2, 3, 4, 9, 16, 17)  # columns of values: density + 1, 2, 3, 8, 15, 16 features
UNIT_BOX = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])


def _available(backend):
    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")


def _examples(small: bool) -> int:
    """The loaded hypothesis profile's example count; a fifth of it under the Triton interpreter."""
    n = settings().max_examples
    return max(3, n // 5) if small else n


# ---- problems ------------------------------------------------------------------------------------


def random_index(vertices, generator, *, missing=0.3, extra_rows=0, past_end=0):
    """(index [Gx,Gy,Gz] int32, V): stored vertices get distinct rows in a random order (-1
    elsewhere), V = stored + extra_rows (rows no vertex uses), and `past_end` vertices get a
    row >= V (V, V + 1, ..., 2**31 - 1), which must count as missing."""
    n_vertices = math.prod(vertices)
    stored = torch.rand(n_vertices, generator=generator) >= missing
    n_stored = int(stored.sum())
    n_rows = n_stored + extra_rows
    index = torch.full((n_vertices,), -1, dtype=torch.int32)
    index[stored] = torch.randperm(n_rows, generator=generator)[:n_stored].to(torch.int32)
    if past_end:
        where = torch.randperm(n_vertices, generator=generator)[:past_end]
        rows = [n_rows, n_rows + 1, 2**31 - 1, n_rows + 7]
        index[where] = torch.tensor([rows[i % len(rows)] for i in range(len(where))], dtype=torch.int32)
    return index.reshape(vertices), n_rows


@st.composite
def problems(draw, max_rays=40, max_vertices=7, max_res=9, max_steps=40, channels=CHANNELS):
    """A baked scene and rays through it: dict of the op's arguments, `values` float64 (the test
    casts it to `dtype`)."""
    batch = draw(ray_batches(max_rays=max_rays), label="rays")
    aabb = batch["aabb"]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1), label="seed"))
    vertices = tuple(draw(st.lists(st.integers(2, max_vertices), min_size=3, max_size=3), label="vertices"))
    res = tuple(draw(st.lists(st.integers(1, max_res), min_size=3, max_size=3), label="occupancy resolution"))
    occupied = torch.rand(res, generator=g) < draw(st.sampled_from([0.3, 0.7, 1.0]), label="occupied fraction")
    occupied.view(-1)[int(torch.randint(0, occupied.numel(), (1,), generator=g))] = True  # never all empty
    index, n_rows = random_index(
        vertices, g, missing=draw(st.sampled_from([0.0, 0.3, 0.8]), label="missing"),
        extra_rows=draw(st.integers(0, 3), label="extra rows"), past_end=draw(st.integers(0, 3), label="past end"))
    n_channels = draw(st.sampled_from(channels), label="channels")
    values = torch.randn(n_rows, n_channels, generator=g, dtype=torch.float64)
    density_scale = draw(st.sampled_from([0.0, 1.0, 10.0, 100.0]), label="density scale")
    values[:, 0] = (torch.rand(n_rows, generator=g, dtype=torch.float64) * 1.25 - 0.25) * density_scale  # some < 0
    rays_o, rays_d = batch["rays_o"], batch["rays_d"].clone()
    if draw(st.booleans(), label="aim"):  # every other ray at a point of the box: fewer misses
        lo, hi = aabb[:3], aabb[3:]
        towards = lo + torch.rand(len(rays_d[::2]), 3, generator=g) * (hi - lo) - rays_o[::2]
        rays_d[::2] = towards / towards.norm(dim=1, keepdim=True).clamp_min(1e-6)
    t_near, t_far, _ = reference.ray_aabb.ray_aabb(rays_o, rays_d, aabb)
    if draw(st.booleans(), label="own segments"):  # from before the box to past it (misses: outside); some empty
        u = torch.rand(3, t_near.shape[0], generator=g)
        t_near, t_far = t_near * u[0], t_far + (t_far - t_near + 1) * u[1]
        t_far = torch.where(u[2] < 0.2, t_near - u[2], t_far)
    span = float((aabb[3:] - aabb[:3]).norm())
    step = span / draw(st.integers(2, max_steps), label="steps") * draw(st.sampled_from([1.0, 1.37]))
    offsets = torch.rand(t_near.shape, generator=g) if draw(st.booleans(), label="jitter") else None
    return dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far, grid=(aabb, occupied),
                index=index, values=values, step_size=step, offsets=offsets,
                early_stop_eps=draw(st.sampled_from([0.0, 0.0, 1e-4, 1e-2]), label="early_stop_eps"),
                dtype=draw(st.sampled_from([torch.float32, torch.float64]), label="dtype"))


def _render(p, backend, values, device="cpu", *, strided=False, early_stop_eps=None):
    move = (lambda x: non_contiguous(x.to(device))) if strided else (lambda x: x.to(device))
    offsets = None if p["offsets"] is None else move(p["offsets"])
    eps = p["early_stop_eps"] if early_stop_eps is None else early_stop_eps
    return baked_render(move(p["rays_o"]), move(p["rays_d"]), move(p["t_near"]), move(p["t_far"]),
                        tuple(x.to(device) for x in p["grid"]), p["index"].to(device), values, p["step_size"],
                        offsets=offsets, early_stop_eps=eps, backend=backend)


def _scales(p):
    """(largest |feature| a sample can have, largest |mid t|): what an early-stop slack multiplies."""
    features = float(p["values"][:, 1:].detach().abs().max()) if p["values"].shape[0] else 0.0
    t = torch.cat([p["t_near"].abs(), p["t_far"].abs(), torch.zeros(1)])
    return features, float(t.max()) + p["step_size"]


def rounding_bound(p, cotangents, dtype):
    """About how far rounding alone may move a value gradient. The fused backward gets each
    sample's density gradient as dt (T g - (total - prefix)), with total = sum_i w_i g_i from the
    forward's outputs and prefix its running sum: the difference carries an error of the unit
    roundoff times |g| (g = <grad_features, feature> + grad_opacity + grad_depth mid), and a ray
    adds up dt of those over its samples. Long rays of many samples with large t (tiny
    directions) lose digits there in float32; samples are counted with march_rays."""
    info, t_starts, t_ends = march_rays(p["rays_o"], p["rays_d"], p["t_near"], p["t_far"], p["grid"], p["step_size"],
                                        offsets=p["offsets"], backend="torch")
    counts = info[:, 1]
    ray_ids = torch.repeat_interleave(torch.arange(len(counts)), counts)
    length = torch.zeros(len(counts), dtype=torch.float64).index_add(0, ray_ids, (t_ends - t_starts).double())
    feature_max, _ = _scales(p)
    t_abs = torch.maximum(p["t_near"].abs(), p["t_far"].abs()).double() + p["step_size"]
    grad_features, grad_opacity, grad_depth = (c.abs() for c in cotangents)
    g = grad_features.sum(1) * feature_max + grad_opacity + grad_depth * t_abs
    per_ray = torch.finfo(dtype).eps * g * length * counts.double().sqrt()
    return 8 * float(per_ray.norm())  # rays round independently


def compare_to_reference(p, device, backend, *, strided=False, seed=0):
    """Forward outputs and value gradients (random cotangents) of `backend` against the
    reference evaluated in float64 on the same (rounded) values."""
    dtype = p["dtype"]
    values = p["values"].to(dtype)
    fast_values = (non_contiguous(values.to(device)) if strided else values.to(device)).requires_grad_()
    ref_values = values.double().requires_grad_()
    fast = _render(p, backend, fast_values, device, strided=strided)
    if values.shape[0] == 0:  # nothing stored: exactly zeros
        for name, a in zip(OUTPUTS, fast):
            assert a.dtype == dtype and torch.equal(a, torch.zeros_like(a)), f"{backend} {name} of an empty grid"
        return fast, fast
    ref = _render(p, "torch", ref_values)

    # A sample whose transmittance is within rounding of early_stop_eps may go either way; what
    # follows it has at most that transmittance left, so each output moves by at most eps times
    # its largest per-sample value.
    eps = p["early_stop_eps"] * 1.01
    feature_max, t_max = _scales(p)
    slack = dict(features=eps * feature_max, opacity=eps, depth=eps * t_max)
    rtol, atol = (1e-4, 2e-5) if dtype == torch.float32 else (1e-9, 1e-10)
    for name, a, e in zip(OUTPUTS, fast, ref):
        assert a.dtype == dtype and a.shape == e.shape and a.device.type == torch.device(device).type, name
        scale = 1.0 + (float(e.detach().abs().max()) if e.numel() else 0.0)
        assert_close(a.detach().cpu().double(), e.detach(), what=f"{backend} {name}", rtol=rtol,
                     atol=atol * scale + slack[name])

    cotangents = random_cotangents(ref, torch.Generator().manual_seed(seed))
    (grad_fast,) = vjp(fast, [fast_values], [c.to(dtype).to(device) for c in cotangents])
    (grad_ref,) = vjp(ref, [ref_values], cotangents)
    assert grad_fast.shape == values.shape and grad_fast.dtype == dtype
    # Early-stop slack: the samples past the threshold carry at most eps of weight per ray, and
    # each (and, through the suffix sum, each sample before it) sends gradients of that order.
    g_max = sum(float(c.abs().max()) if c.numel() else 0.0 for c in cotangents) * (1 + feature_max + t_max)
    grad_slack = eps * len(p["t_near"]) * 4 * g_max * (1 + t_max)
    scale = max(1.0, float(grad_ref.abs().max())) if grad_ref.numel() else 1.0
    rtol, atol = (1e-3, 1e-4) if dtype == torch.float32 else (1e-8, 1e-10)
    assert_close(grad_fast.cpu().double(), grad_ref, what=f"{backend} grad values", rtol=rtol,
                 atol=atol * scale + grad_slack + rounding_bound(p, cotangents, dtype))
    return fast, ref


# ---- the reference against a hand computation -----------------------------------------------------


def _hand_scene(dtype=torch.float64):
    """A 2x2x2-vertex grid over the unit box. Vertices at x = 0 store (density 2, features 0, 3),
    at x = 1 (6, 1, 3); of the x = 1 ones, (1,1,1) is -1 and (1,0,0) names row 7 of 7 (missing
    too). On the line y = z = 0.5 each corner weighs 1/4 of its x weight, so there
        density = 2 (1 - x) + 6 x / 2 = 2 + x,  features = (x / 2, 3 - 1.5 x)."""
    index = torch.tensor([[[0, 1], [2, 3]], [[7, 4], [5, -1]]], dtype=torch.int32)
    values = torch.tensor([[2.0, 0.0, 3.0]] * 4 + [[6.0, 1.0, 3.0]] * 3, dtype=dtype)
    rays_o = torch.tensor([[-1.0, 0.5, 0.5], [-1.0, 2.0, 0.5]])  # along +x; the second misses the box
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    return index, values, rays_o, rays_d


def _hand_expected(xs, early_stop_eps=0.0):
    """(features, opacity, depth) of the first ray composited over samples at x in xs (dt = 1/4,
    t = 1 + x), by the formulas of the module docstring."""
    features, opacity, depth, tau = [0.0, 0.0], 0.0, 0.0, 0.0
    for x in xs:
        transmittance = math.exp(-tau)
        if transmittance < early_stop_eps:
            break
        sigma = 2.0 + x
        w = transmittance * (1.0 - math.exp(-sigma * 0.25))
        features[0] += w * x / 2
        features[1] += w * (3.0 - 1.5 * x)
        opacity += w
        depth += w * (1.0 + x)
        tau += sigma * 0.25
    return features, opacity, depth


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_hand_case(backend):
    """Steps of 1/4 along x from t = 1 to 2: midpoints x = 1/8, 3/8, 5/8, 7/8 (exact in float32,
    so are the trilinear weights and the float64 densities)."""
    _available(backend)
    index, values, rays_o, rays_d = _hand_scene()
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, UNIT_BOX)
    assert hit.tolist() == [True, False]
    xs = [0.125, 0.375, 0.625, 0.875]
    cases = [
        (torch.ones(1, 1, 1, dtype=torch.bool), 0.0, xs),  # every sample
        (torch.tensor([False, True]).reshape(2, 1, 1), 0.0, xs[2:]),  # samples in the upper half only
        (torch.ones(3, 2, 5, dtype=torch.bool), 0.2, xs),  # T = e^-1.78 < 0.2 before the 4th: 3 samples
    ]
    for occupied, eps, kept in cases:
        out = baked_render(rays_o, rays_d, t_near, t_far, (UNIT_BOX, occupied), index, values, 0.25,
                           early_stop_eps=eps, backend=backend)
        features, opacity, depth = _hand_expected(kept, eps)
        if eps:
            assert len(kept) == 4 and _hand_expected(kept[:3]) == (features, opacity, depth)
        expected = (torch.tensor([features, [0.0, 0.0]], dtype=torch.float64),
                    torch.tensor([opacity, 0.0], dtype=torch.float64), torch.tensor([depth, 0.0], dtype=torch.float64))
        for name, a, e in zip(OUTPUTS, out, expected):
            assert a.dtype == torch.float64
            assert_close(a, e, what=f"{backend} {name} (eps {eps}, x {kept})", rtol=1e-12, atol=1e-14)


def test_hand_case_float32_and_interpolation():
    """The reference in float32 agrees with the float64 hand values; trilinear_corners' corners and
    weights at one point by hand (corner k = 4 dx + 2 dy + dz)."""
    index, values, rays_o, rays_d = _hand_scene(torch.float32)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, UNIT_BOX)
    out = baked_render(rays_o, rays_d, t_near, t_far, (UNIT_BOX, torch.ones(1, 1, 1, dtype=torch.bool)), index,
                       values, 0.25, early_stop_eps=0.0, backend="torch")
    features, opacity, depth = _hand_expected([0.125, 0.375, 0.625, 0.875])
    assert out.opacity.dtype == torch.float32
    torch.testing.assert_close(out.features[0], torch.tensor(features))
    torch.testing.assert_close(out.opacity, torch.tensor([opacity, 0.0]))
    torch.testing.assert_close(out.depth, torch.tensor([depth, 0.0]))

    rows, weights = reference.baked_render.trilinear_corners(torch.tensor([[0.25, 0.5, 1.0]]), UNIT_BOX, index)
    assert rows.tolist() == [[0, 1, 2, 3, 7, 4, 5, -1]]
    assert weights.tolist() == [[0.0, 0.375, 0.0, 0.375, 0.0, 0.125, 0.0, 0.125]]  # z = 1: upper z corner
    v = reference.baked_render.interpolate(torch.tensor([[0.25, 0.5, 1.0]]), UNIT_BOX, index, values.double())
    assert v.tolist() == [[0.375 * 2 * 2 + 0.125 * 6, 0.125, 0.75 * 3 + 0.125 * 3]]


# ---- every backend against the reference ------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
def test_matches_reference(device, backend):
    small = interpreted(device, backend)

    @settings(max_examples=_examples(small), deadline=None)
    @given(data=st.data())
    def check(data):
        p = data.draw(problems(max_rays=INTERPRETED_MAX["rays"], max_vertices=4, max_res=5, max_steps=8)
                      if small else problems(max_rays=60, max_res=20, max_steps=60), label="problem")
        strided = data.draw(st.booleans(), label="non_contiguous")
        compare_to_reference(p, device, backend, strided=strided, seed=data.draw(st.integers(0, 1000)))

    check()


@pytest.mark.parametrize("channels", CHANNELS + (8,))
@pytest.mark.parametrize("device,backend", backend_params())
def test_every_channel_count_matches_reference(device, backend, channels):
    """Each channel count (the C++ kernels specialise C = 4, 8, 16), every time: float32 and
    float64, missing and past-the-end rows, early stopping on."""
    small = interpreted(device, backend)
    g = torch.Generator().manual_seed(channels)
    aabb = torch.tensor(BOXES[1])
    index, n_rows = random_index((3, 4, 3), g, missing=0.2, extra_rows=1, past_end=2)
    values = torch.randn(n_rows, channels, generator=g, dtype=torch.float64)
    values[:, 0] = values[:, 0].abs() * 4
    n = 6 if small else 50
    rays_o = torch.rand(n, 3, generator=g) * 3 - 1.5
    rays_d = torch.randn(n, 3, generator=g)
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    p = dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far,
             grid=(aabb, torch.rand(4, 3, 5, generator=g) < 0.7), index=index, values=values, step_size=0.2,
             offsets=None, early_stop_eps=1e-3)
    dtypes = (torch.float32, torch.float64)
    for dtype in dtypes[channels % 2:][:1] if small else dtypes:  # interpreted: one dtype per count
        _, ref = compare_to_reference({**p, "dtype": dtype}, device, backend, seed=channels)
    assert hit.any() and float(ref[1].detach().max()) > 0.1  # something is composited: zeros would pass


def _dense_rows(vertices, generator, *, missing, past_end):
    """random_index's grid with 4 features a row and densities mostly positive (most samples
    absorb, so compositing and early termination are exercised)."""
    index, n_rows = random_index(vertices, generator, missing=missing, past_end=past_end)
    values = torch.randn(n_rows, 5, generator=generator, dtype=torch.float64)
    values[:, 0] = values[:, 0] * 6 + 2
    return index, values


@pytest.mark.parametrize("device,backend", backend_params())
def test_many_rays(device, backend):
    """More rays than one Triton tile (64) or one CPU chunk, of very different lengths, many of
    them through the same rows; then zero rays on the same grid."""
    small = interpreted(device, backend)
    g = torch.Generator().manual_seed(12)
    aabb = torch.tensor(BOXES[1])
    index, values = _dense_rows((5, 4, 6), g, missing=0.3, past_end=3)
    n = 150 if small else 3000
    lo, hi = aabb[:3], aabb[3:]
    rays_o = lo + (torch.rand(n, 3, generator=g) * 3 - 1) * (hi - lo)
    rays_d = lo + torch.rand(n, 3, generator=g) * (hi - lo) - rays_o  # at a point of the box
    rays_d[::3] = torch.randn(len(rays_d[::3]), 3, generator=g)  # anywhere
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    p = dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far,
             grid=(aabb, torch.rand(6, 7, 5, generator=g) < 0.6), index=index, values=values,
             step_size=0.5 if small else 0.03, offsets=torch.rand(n, generator=g), early_stop_eps=1e-3,
             dtype=torch.float32)
    _, ref = compare_to_reference(p, device, backend, seed=12)
    assert int(hit.sum()) > n // 2 and int((ref[1] > 0.01).sum()) > n // 3
    empty = {**p, **{k: p[k][:0] for k in ("rays_o", "rays_d", "t_near", "t_far", "offsets")}}
    out = _render(empty, backend, values.float().to(device), device)
    assert [tuple(o.shape) for o in out] == [(0, 4), (0,), (0,)]


@pytest.mark.parametrize("device,backend", backend_params())
def test_a_cameras_rays_in_raster_and_shuffled_order(device, backend):
    """A camera's rays in raster order (neighbours an eighth of a cell apart: the CPU forward runs
    them one at a time) and the same rays shuffled (it keeps several in flight) both match the
    reference, so each CPU path is checked, and agree with each other bitwise."""
    small = interpreted(device, backend)
    g = torch.Generator().manual_seed(21)
    aabb = torch.tensor(BOXES[0])
    index, values = _dense_rows((6, 7, 5), g, missing=0.2, past_end=2)
    side = 8 if small else 40
    lo, hi = aabb[:3], aabb[3:]
    u = (torch.arange(side) + 0.5) / side
    target = torch.stack(torch.meshgrid(lo[0] + u * (hi[0] - lo[0]), lo[1] + u * (hi[1] - lo[1]), indexing="ij"), -1)
    target = torch.cat([target.reshape(-1, 2), torch.full((side * side, 1), float(hi[2]))], 1)
    origin = torch.tensor([0.5 * float(lo[0] + hi[0]), 0.5 * float(lo[1] + hi[1]), float(lo[2]) - 2.0])
    rays_o = origin.expand(side * side, 3).contiguous()
    rays_d = target - origin
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    occupied = torch.rand(5, 6, 4, generator=g) < 0.6
    order = torch.randperm(side * side, generator=g)
    outs = []
    for perm in (torch.arange(side * side), order):
        p = dict(rays_o=rays_o[perm], rays_d=rays_d[perm], t_near=t_near[perm], t_far=t_far[perm],
                 grid=(aabb, occupied), index=index, values=values, step_size=0.3 if small else 0.02,
                 offsets=None, early_stop_eps=1e-3, dtype=torch.float32)
        compare_to_reference(p, device, backend, seed=21)
        out = _render(p, backend, values.float().to(device), device)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(side * side)
        outs.append([o.cpu()[inverse] for o in out])
    assert bool(hit.all()) and float(outs[0][1].max()) > 0.1
    for raster, shuffled in zip(*outs):
        assert torch.equal(raster, shuffled)


@pytest.mark.parametrize("device,backend", backend_params())
def test_non_contiguous_inputs(device, backend):
    """Strided rays_o, rays_d, t_near, t_far, offsets and values (two layouts) give the same
    outputs and gradients, bitwise, as contiguous ones on the same backend."""
    g = torch.Generator().manual_seed(5)
    aabb = torch.tensor(BOXES[0])
    index, n_rows = random_index((4, 3, 3), g, missing=0.2, past_end=1)
    values = torch.randn(n_rows, 4, generator=g)
    values[:, 0] = values[:, 0].abs() * 3
    n = 8 if interpreted(device, backend) else 40
    rays_o = torch.rand(n, 3, generator=g) * 4 - 2
    rays_d = torch.randn(n, 3, generator=g)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
    p = dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far,
             grid=(aabb, torch.rand(3, 5, 4, generator=g) < 0.8), index=index,
             step_size=0.4 if interpreted(device, backend) else 0.1, offsets=torch.rand(n, generator=g),
             early_stop_eps=1e-4)
    cotangents = None

    def run(strided, layout):
        v = values.clone().to(device)
        if layout == "strided":
            v = non_contiguous(v)
        elif layout == "transposed":
            v = v.t().contiguous().t()
        v.requires_grad_()
        assert v.is_contiguous() == (layout == "contiguous")
        out = _render(p, backend, v, device, strided=strided)
        nonlocal cotangents
        cotangents = cotangents or [c.to(device) for c in random_cotangents(out, torch.Generator().manual_seed(6))]
        (grad,) = vjp(out, [v], cotangents)
        return [o.detach().cpu() for o in out] + [grad.cpu()]

    expected = run(False, "contiguous")
    assert float(expected[1].max()) > 0.1
    for strided, layout in ((True, "contiguous"), (False, "strided"), (True, "transposed")):
        for name, a, e in zip(OUTPUTS + ("grad values",), run(strided, layout), expected):
            assert torch.equal(a, e), f"{backend} {name} differs with strided rays {strided}, values {layout}"


# ---- samples are march_rays' samples -------------------------------------------------------------


def _sparse_occupancy(res, generator, n_blobs=6):
    """A mostly empty grid: a few boxes of occupied cells (so whole bricks, and cubes of bricks
    around them, are empty: the march's jumps of several bricks), and a few scattered cells."""
    occupied = torch.zeros(res, dtype=torch.bool)
    for _ in range(n_blobs):
        lo = [int(torch.randint(0, r, (1,), generator=generator)) for r in res]
        size = [max(1, r // 4) for r in res]
        occupied[lo[0]:lo[0] + size[0], lo[1]:lo[1] + size[1], lo[2]:lo[2] + size[2]] = True
    flat = occupied.view(-1)
    flat[torch.randint(0, flat.numel(), (n_blobs,), generator=generator)] = True
    return occupied


@pytest.mark.parametrize("device,backend", backend_params())
def test_samples_are_march_rays_samples(device, backend):
    """With every vertex stored with density 1 and feature 1, sigma = 1 at every sample, so the
    opacity and depth are those of compositing march_rays' intervals with sigma = 1: any sample
    added, dropped or moved (the fused march skips empty space) shows. On grids of several
    resolutions (up to 70 per axis: empty cubes of several bricks), boxes, with and without jitter,
    segments from ray_aabb and segments starting before the box and ending past it."""
    small = interpreted(device, backend)
    g = torch.Generator().manual_seed(3)
    configs = [((5, 6, 7), BOXES[1], 0.13)] if small else \
        [((5, 6, 7), BOXES[1], 0.05), ((70, 33, 66), BOXES[0], 0.011), ((17, 70, 9), BOXES[1], 0.02)]
    for res, box, step in configs:
        aabb = torch.tensor(box)
        occupied = _sparse_occupancy(res, g) if min(res) > 8 else torch.rand(res, generator=g) < 0.4
        vertices = (3, 4, 2)
        index = torch.arange(math.prod(vertices), dtype=torch.int32).reshape(vertices)
        values = torch.ones(math.prod(vertices), 2)
        n = 10 if small else 300
        lo, hi = aabb[:3], aabb[3:]
        rays_o = (lo + hi) / 2 + (torch.rand(n, 3, generator=g) * 2 - 1) * (hi - lo) * 1.5
        rays_d = lo + torch.rand(n, 3, generator=g) * (hi - lo) - rays_o  # at a point in the box...
        rays_d[n // 2:] = torch.randn(n - n // 2, 3, generator=g)  # ... or anywhere
        rays_d[: n // 5, torch.randint(0, 3, (1,), generator=g)] = 0.0  # some parallel to a face
        t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
        own = torch.arange(n) % 3 == 0  # from the origin (outside the box) to well past it
        t_near = torch.where(own, torch.zeros(n), t_near)
        t_far = torch.where(own, t_far + 1.0, t_far)
        for offsets in (None, torch.rand(n, generator=g)):
            info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, (aabb, occupied), step,
                                                offsets=offsets, backend="torch")
            assert int(info[:, 1].sum()) > (5 if small else 200)
            ones = torch.ones(t_starts.shape[0], dtype=torch.float64)
            _, opacity, depth, _ = composite(ones, ones[:, None], t_starts.double(), t_ends.double(), info,
                                             backend="torch")
            out = baked_render(rays_o.to(device), rays_d.to(device), t_near.to(device), t_far.to(device),
                               (aabb.to(device), occupied.to(device)), index.to(device), values.to(device), step,
                               offsets=None if offsets is None else offsets.to(device), early_stop_eps=0.0,
                               backend=backend)
            what = f"{backend} res {res} offsets {offsets is not None}"
            assert_close(out.opacity.cpu().double(), opacity, what=f"{what} opacity", rtol=1e-5, atol=1e-6)
            assert_close(out.features[:, 0].cpu().double(), opacity, what=f"{what} features", rtol=1e-5, atol=1e-6)
            assert_close(out.depth.cpu().double(), depth, what=f"{what} depth", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device,backend", backend_params())
def test_grid_changed_between_calls(device, backend):
    """The native ops keep the empty-space structure of the last `occupied` between calls: an
    in-place change to it, or another grid (a fresh tensor each call), must be seen."""
    g = torch.Generator().manual_seed(9)
    aabb = torch.tensor(BOXES[0])
    index = torch.arange(27, dtype=torch.int32).reshape(3, 3, 3)
    values = torch.rand(27, 3, generator=g) + 0.5
    n = 6 if interpreted(device, backend) else 64
    rays_o = torch.rand(n, 3, generator=g) * 1.6 - 0.8
    rays_d = torch.randn(n, 3, generator=g)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
    res = (9, 9, 9)
    occupied = torch.ones(res, dtype=torch.bool, device=device)
    step = 0.4 if interpreted(device, backend) else 0.05

    def check(occ, what):
        out = baked_render(*(x.to(device) for x in (rays_o, rays_d, t_near, t_far)), (aabb.to(device), occ),
                           index.to(device), values.to(device), step, backend=backend)
        ref = baked_render(rays_o, rays_d, t_near, t_far, (aabb, occ.cpu()), index, values, step, backend="torch")
        for name, a, e in zip(OUTPUTS, out, ref):
            assert_close(a.cpu(), e, what=f"{backend} {name} {what}", rtol=1e-4, atol=1e-5)

    check(occupied, "full grid")
    occupied.zero_()
    check(occupied, "after zero_()")
    occupied[2:7, 1:5, 3:9] = True
    check(occupied, "after a slice set")
    for seed in range(1 if interpreted(device, backend) else 4):
        check((torch.rand(res, generator=torch.Generator().manual_seed(seed)) < 0.3).to(device), f"new grid {seed}")


@pytest.mark.parametrize("device,backend", backend_params())
def test_renders_under_inference_mode(device, backend):
    """A baked model rendering under torch.inference_mode (its grid made there too)."""
    index, values, rays_o, rays_d = _hand_scene(torch.float32)
    with torch.inference_mode():
        occupied = torch.ones(2, 2, 2, dtype=torch.bool, device=device)
        t_near, t_far, _ = ray_aabb(rays_o.to(device), rays_d.to(device), UNIT_BOX.to(device))
        out = baked_render(rays_o.to(device), rays_d.to(device), t_near, t_far, (UNIT_BOX.to(device), occupied),
                           index.to(device), values.to(device), 0.25, early_stop_eps=0.0, backend=backend)
    torch.testing.assert_close(out.opacity.cpu()[0], torch.tensor(_hand_expected([0.125, 0.375, 0.625, 0.875])[1]))


# ---- gradients -----------------------------------------------------------------------------------


def _gradcheck_problem():
    """Four rays (one missing, one from inside the box, one stopping early on an opaque wall)
    through a 3x2x3 grid with a missing and a past-the-end row; densities > 0 so max(v, 0) has no
    kink, and no transmittance near early_stop_eps = 0.05."""
    g = torch.Generator().manual_seed(2)
    index, n_rows = random_index((3, 2, 3), g, missing=0.15, past_end=1)
    assert (index == -1).any() and n_rows >= 10
    values = torch.rand(n_rows, 3, generator=g, dtype=torch.float64) * 2 - 1
    values[:, 0] = torch.rand(n_rows, generator=g, dtype=torch.float64) + 0.5
    wall = index[2].flatten()  # the vertices on the box's upper x face: an opaque wall
    values[wall[(wall >= 0) & (wall < n_rows)].long(), 0] = 40.0
    rays_o = torch.tensor([[-2.0, 0.1, 0.2], [0.1, -0.2, 0.3], [3.0, 3.0, 3.0], [0.3, 0.4, -2.0]])
    rays_d = torch.tensor([[1.0, 0.1, -0.05], [0.3, 0.2, 1.0], [1.0, 0.0, 0.0], [0.1, -0.1, 1.0]])
    aabb = torch.tensor(BOXES[0])
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    assert hit.tolist() == [True, True, False, True]
    occupied = torch.ones(2, 3, 3, dtype=torch.bool)
    occupied[1, 0, 0] = False
    return dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far, grid=(aabb, occupied), index=index,
                values=values, step_size=0.3, offsets=torch.tensor([0.5, 0.1, 0.0, 0.9]), early_stop_eps=0.05)


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_gradcheck_float64(backend):
    _available(backend)
    p = _gradcheck_problem()
    values = p["values"].clone().requires_grad_()

    def f(v):
        return tuple(_render(p, backend, v))

    _, opacity, _ = f(values.detach())
    assert float(opacity.min()) == 0.0 and float(opacity[0]) > 0.95  # the miss; the wall
    assert torch.autograd.gradcheck(f, (values,), eps=1e-6, atol=1e-6, fast_mode=backend == "triton")


@pytest.mark.parametrize("device,backend", backend_params())
def test_gradient_of_each_output(device, backend):
    """The value gradient of each output alone (random cotangent on it, none on the others)
    against the reference's autograd, and with all three together."""
    p = {**_gradcheck_problem(), "early_stop_eps": 1e-4}
    values = p["values"]
    fast_values = values.to(device).requires_grad_()
    ref_values = values.clone().requires_grad_()
    fast = _render(p, backend, fast_values, device)
    ref = _render(p, "torch", ref_values)
    cotangents = random_cotangents(ref, torch.Generator().manual_seed(4))
    zeros = [torch.zeros_like(c) for c in cotangents]
    for which in (0, 1, 2, None):
        cots = cotangents if which is None else [c if i == which else z
                                                 for i, (c, z) in enumerate(zip(cotangents, zeros))]
        (grad_fast,) = torch.autograd.grad(sum((o * c.to(device)).sum() for o, c in zip(fast, cots)), fast_values,
                                           retain_graph=True)
        (grad_ref,) = torch.autograd.grad(sum((o * c).sum() for o, c in zip(ref, cots)), ref_values, retain_graph=True)
        what = f"{backend} grad values from {'all' if which is None else OUTPUTS[which]}"
        assert float(grad_ref.abs().max()) > 1e-5, what
        assert_close(grad_fast.cpu(), grad_ref, what=what, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("device,backend", backend_params())
def test_gradient_at_zero_and_negative_density(device, backend):
    """sigma = max(v, 0): where v < 0 no density gradient; where v = 0 exactly it passes (as
    clamp_min's does). A grid whose densities are 0 or < 0 everywhere: opacity 0, and the density
    gradient is the reference's."""
    p = _gradcheck_problem()
    for density, passes in ((0.0, True), (-1.0, False)):
        values = p["values"].clone()
        values[:, 0] = density
        fast_values = values.to(device).requires_grad_()
        ref_values = values.clone().requires_grad_()
        fast = _render(p, backend, fast_values, device)
        ref = _render(p, "torch", ref_values)
        assert float(fast.opacity.detach().abs().max()) == 0.0
        cotangents = random_cotangents(ref, torch.Generator().manual_seed(1))
        (grad_fast,) = vjp(fast, [fast_values], [c.to(device) for c in cotangents])
        (grad_ref,) = vjp(ref, [ref_values], cotangents)
        assert bool((grad_ref[:, 0] != 0).any()) == passes and float(grad_ref[:, 1:].abs().max()) == 0.0
        assert_close(grad_fast.cpu(), grad_ref, what=f"{backend} grad at density {density}", rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_backward_is_deterministic(dtype):
    """Thousands of rays through a 3x3x3 vertex grid all send gradients to the same 27 rows: two
    backward passes give bitwise equal gradients (training resumes bitwise)."""
    _available("cpp")
    g = torch.Generator().manual_seed(8)
    aabb = torch.tensor(BOXES[0])
    n = 3000
    rays_o = torch.rand(n, 3, generator=g) * 4 - 2
    rays_d = torch.rand(n, 3, generator=g) - 0.5 - rays_o  # towards the middle of the box
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    assert bool(hit.all())
    index = torch.arange(27, dtype=torch.int32).reshape(3, 3, 3)
    values = (torch.rand(27, 5, generator=g, dtype=dtype) + 0.1).requires_grad_()
    cotangents = None
    grads = []
    threads = torch.get_num_threads()
    try:
        for n_threads in (threads, threads, 1):  # twice as is, then on one thread
            torch.set_num_threads(n_threads)
            out = baked_render(rays_o, rays_d, t_near, t_far, (aabb, torch.ones(7, 7, 7, dtype=torch.bool)), index,
                               values, 0.05, offsets=torch.rand(n, generator=torch.Generator().manual_seed(1)),
                               backend="cpp")
            cotangents = cotangents or random_cotangents(out, torch.Generator().manual_seed(2))
            grads.append(vjp(out, [values], cotangents)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


# ---- registration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.baked_render_triton if backend == "triton" else torch.ops.fastnerf.baked_render
    index, values, rays_o, rays_d = _hand_scene(torch.float32)
    rays_o = torch.cat([rays_o, torch.tensor([[0.3, 0.2, 0.1]])]).to(device)
    rays_d = torch.cat([rays_d, torch.tensor([[0.2, -0.5, 1.0]])]).to(device)
    aabb, occupied = UNIT_BOX.to(device), torch.ones(2, 1, 3, dtype=torch.bool, device=device)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb)
    values = values.to(device).requires_grad_()
    offsets_cases = (None, torch.tensor([0.1, 0.5, 0.9], device=device))
    for offsets in offsets_cases[:1] if interpreted(device, backend) else offsets_cases:
        args = (rays_o, rays_d, t_near, t_far, offsets, aabb, occupied, index.to(device), values, 0.25, 1e-4)
        torch.library.opcheck(op.default, args)


# ---- empty grids and no rays -------------------------------------------------------------------------


EMPTY_GRIDS = {  # (index, values): nothing stored anywhere
    "no rows, index -1": (torch.full((3, 2, 4), -1, dtype=torch.int32), torch.zeros(0, 4)),
    "no rows, index naming rows": (torch.arange(24, dtype=torch.int32).reshape(3, 2, 4),
                                   torch.zeros(0, 2, dtype=torch.float64)),
    "rows, index -1": (torch.full((2, 2, 2), -1, dtype=torch.int32), torch.ones(5, 3)),
}

def _empty_grid_params():
    backends = [pytest.param("cpu", "torch", id="cpu-torch")] + backend_params()
    return [pytest.param(*b.values, case, id=f"{b.id}-{case}", marks=b.marks)
            for b in backends for case in EMPTY_GRIDS]


@pytest.mark.parametrize("device,backend,case", _empty_grid_params())
def test_empty_grid_renders_nothing(device, backend, case):
    """No stored vertex (values [0, C], index all -1 or naming rows that do not exist), or rows
    but an index of -1 everywhere: opacity, features and depth 0, gradients 0; with zero rays too."""
    aabb = torch.tensor(BOXES[1], device=device)
    occupied = torch.ones(3, 3, 3, dtype=torch.bool, device=device)
    rays_o = torch.tensor([[0.5, 0.3, -3.0], [0.5, 0.4, -0.5]], device=device)  # from outside; from inside
    rays_d = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.2, 1.0]], device=device)
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, aabb)
    assert hit.all()
    index, values = EMPTY_GRIDS[case]
    values = values.to(device).requires_grad_()
    for n in (0, 2):
        out = baked_render(rays_o[:n], rays_d[:n], t_near[:n], t_far[:n], (aabb, occupied), index.to(device),
                           values, 0.3, backend=backend)
        assert out.features.shape == (n, values.shape[1] - 1) and out.opacity.shape == out.depth.shape == (n,)
        assert all(o.dtype == values.dtype for o in out)
        for name, o in zip(OUTPUTS, out):
            assert torch.equal(o, torch.zeros_like(o)), f"{backend} {name} of an empty grid"
        (grad,) = vjp(out, [values], [torch.ones_like(o) for o in out])
        assert grad.shape == values.shape and torch.equal(grad, torch.zeros_like(grad))


# ---- bad input ---------------------------------------------------------------------------------------


def _good():
    index, values, rays_o, rays_d = _hand_scene(torch.float32)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, UNIT_BOX)
    return dict(rays_o=rays_o, rays_d=rays_d, t_near=t_near, t_far=t_far,
                grid=(UNIT_BOX.clone(), torch.ones(2, 2, 2, dtype=torch.bool)), index=index, values=values,
                step_size=0.25)


BAD = {
    "rays_o float64": (dict(rays_o=torch.zeros(2, 3, dtype=torch.float64)), "rays_o"),
    "rays_d float64": (dict(rays_d=torch.ones(2, 3, dtype=torch.float64)), "rays_d"),
    "rays_d other length": (dict(rays_d=torch.ones(3, 3)), "rays_d"),
    "rays_d [N,2]": (dict(rays_d=torch.ones(2, 2)), "rays_d"),
    "t_near other length": (dict(t_near=torch.zeros(3)), "t_near"),
    "t_far inf": (dict(t_far=torch.tensor([2.0, float("inf")])), "t_far"),
    "offsets 1.0": (dict(offsets=torch.tensor([0.0, 1.0])), "offsets"),
    "index int64": (dict(index=torch.zeros(2, 2, 2, dtype=torch.int64)), "index"),
    "index float": (dict(index=torch.zeros(2, 2, 2)), "index"),
    "index 2-d": (dict(index=torch.zeros(2, 2, dtype=torch.int32)), "index"),
    "index a side of 1": (dict(index=torch.zeros(2, 1, 2, dtype=torch.int32)), "index"),
    "index a side of 0": (dict(index=torch.zeros(2, 2, 0, dtype=torch.int32)), "index"),
    "index not a tensor": (dict(index=[[[0, 0], [0, 0]]] * 2), "index"),
    "values one column": (dict(values=torch.ones(7, 1)), "values"),
    "values 1-d": (dict(values=torch.ones(7)), "values"),
    "values int": (dict(values=torch.ones(7, 3, dtype=torch.int32)), "values"),
    "values float16": (dict(values=torch.ones(7, 3, dtype=torch.float16)), "values"),
    "occupied float": (dict(grid=(UNIT_BOX, torch.ones(2, 2, 2))), "occupied"),
    "occupied uint8": (dict(grid=(UNIT_BOX, torch.ones(2, 2, 2, dtype=torch.uint8))), "occupied"),
    "grid aabb inverted": (dict(grid=(-UNIT_BOX, torch.ones(2, 2, 2, dtype=torch.bool))), "aabb"),
    "step_size 0": (dict(step_size=0.0), "step_size"),
    "step_size negative": (dict(step_size=-0.25), "step_size"),
    "step_size nan": (dict(step_size=float("nan")), "step_size"),
    "step_size bool": (dict(step_size=True), "step_size"),
    "early_stop_eps negative": (dict(early_stop_eps=-1e-4), "early_stop_eps"),
    "early_stop_eps 1": (dict(early_stop_eps=1.0), "early_stop_eps"),
    "early_stop_eps nan": (dict(early_stop_eps=float("nan")), "early_stop_eps"),
    "early_stop_eps bool": (dict(early_stop_eps=True), "early_stop_eps"),
    "early_stop_eps str": (dict(early_stop_eps="0.01"), "early_stop_eps"),
    "early_stop_eps tensor": (dict(early_stop_eps=torch.tensor([0.01, 0.02])), "early_stop_eps"),
}


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    _available(backend)
    change, name = BAD[case]
    with pytest.raises(ValueError, match=name):
        baked_render(**{**_good(), **change}, backend=backend)


@pytest.mark.parametrize("name", ["rays_d", "t_far", "offsets", "index", "values", "occupied"])
def test_mixed_devices_rejected_on_any_machine(name):
    kwargs = {**_good(), "offsets": torch.zeros(2)}
    if name == "occupied":
        kwargs["grid"] = (kwargs["grid"][0], kwargs["grid"][1].to("meta"))
    else:
        kwargs[name] = kwargs[name].to("meta")
    with pytest.raises(ValueError, match=f"{name} must be on cpu"):
        baked_render(**kwargs)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["rays_d", "index", "values", "occupied"])
def test_mixed_devices_rejected(name):
    kwargs = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in _good().items()}
    kwargs["grid"] = tuple(x.cuda() for x in kwargs["grid"])
    if name == "occupied":
        kwargs["grid"] = (kwargs["grid"][0], kwargs["grid"][1].cpu())
    else:
        kwargs[name] = kwargs[name].cpu()
    with pytest.raises(ValueError, match=f"{name} must be on cuda"):
        baked_render(**kwargs)


def test_native_op_checks_itself():
    """Called directly, past the Python validation, the C++ op still refuses bad arguments."""
    _available("cpp")
    k = _good()
    base = [k["rays_o"], k["rays_d"], k["t_near"], k["t_far"], None, *k["grid"], k["index"], k["values"], 0.25, 1e-4]
    for position, bad, message in ((7, torch.zeros(2, 2, 2, dtype=torch.int64), "index"),
                                   (7, torch.zeros(2, 1, 2, dtype=torch.int32), "index"),
                                   (8, torch.ones(7, 1), "values"), (6, torch.ones(2, 2, 2), "occupied"),
                                   (9, -0.25, "step_size"), (10, 1.5, "early_stop_eps")):
        args = list(base)
        args[position] = bad
        with pytest.raises(RuntimeError, match=message):
            torch.ops.fastnerf.baked_render(*args)
