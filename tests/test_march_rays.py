"""march_rays: the reference by hand and by invariants; every backend equal to it; opcheck; bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastnerf import reference
from fastnerf.fields.occupancy import OccupancyGrid
from fastnerf.ops import march_rays, ray_aabb
from fastnerf.reference.march_rays import occupied_at
from op_tester import backend_params, interpreted, non_contiguous, ray_batches

BOX = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])


def _available(backend):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")


@st.composite
def problems(draw, max_rays=40, max_steps=60, modes=False, max_reach=1e3):
    """A ray batch with its ray_aabb segments, a random grid, a step and optional jitter; with
    `modes`, also a contraction, a cone angle, a max_step and a disparity_step (and segments reaching up to
    `max_reach` times the box, as unbounded scenes have)."""
    batch = draw(ray_batches(max_rays=max_rays))
    aabb = batch["aabb"]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    res = tuple(draw(st.lists(st.integers(1, 9), min_size=3, max_size=3)))
    fraction = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    occupied = torch.rand(res, generator=g) < fraction
    t_near, t_far, _ = reference.ray_aabb.ray_aabb(batch["rays_o"], batch["rays_d"], aabb)
    if draw(st.booleans()):  # segments of our own: some empty (t_far <= t_near), some past the box
        t_near = torch.rand(t_near.shape, generator=g) * 2
        t_far = t_near + torch.randn(t_near.shape, generator=g) * 2
    span = float((aabb[3:] - aabb[:3]).norm())
    step = span / draw(st.integers(2, max_steps)) * draw(st.sampled_from([1.0, 1.37]))
    offsets = torch.rand(t_near.shape, generator=g) if draw(st.booleans()) else None
    mode = dict(contraction=None, cone_angle=0.0, max_step=None, disparity_step=0.0)
    if modes:
        mode["contraction"] = draw(st.sampled_from(reference.march_rays.CONTRACTIONS))
        mode["cone_angle"] = draw(st.sampled_from([0.0, 1 / 256, 0.05, 0.4]))
        mode["max_step"] = draw(st.sampled_from([None, step, step * 3.3]))
        if mode["cone_angle"]:  # far steps evenly spaced in disparity from t = cone_angle / disparity_step
            mode["disparity_step"] = mode["cone_angle"] / draw(st.sampled_from([math.inf, 0.5, 3.0]))
        reach = draw(st.sampled_from([1.0, 10.0, max_reach]))
        # far only where steps grow fast enough to keep the reference's loop over steps short
        far = mode["cone_angle"] > 0.01 and mode["max_step"] is None
        t_far = t_near + (t_far - t_near) * (reach if far else min(reach, 10.0))
    return dict(rays_o=batch["rays_o"], rays_d=batch["rays_d"], t_near=t_near, t_far=t_far,
                grid=(aabb, occupied), step_size=step, offsets=offsets, **mode)


def _call(p, backend, device="cpu", strided=False):
    move = (lambda x: non_contiguous(x.to(device))) if strided else (lambda x: x.to(device))
    grid = tuple(x.to(device) for x in p["grid"])
    offsets = None if p["offsets"] is None else move(p["offsets"])
    mode = {name: p[name] for name in ("contraction", "cone_angle", "max_step", "disparity_step") if name in p}
    return march_rays(move(p["rays_o"]), move(p["rays_d"]), move(p["t_near"]), move(p["t_far"]), grid,
                      p["step_size"], offsets=offsets, backend=backend, **mode)


# ---- the reference by hand and by invariants ---------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_hand_case(backend):
    """A ray along +x through a 4x1x1 grid [occupied, empty, occupied, empty] in steps of 0.25."""
    _available(backend)
    occupied = torch.tensor([True, False, True, False]).reshape(4, 1, 1)
    rays_o, rays_d = torch.tensor([[-2.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, BOX, backend=backend)
    info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, (BOX, occupied), 0.25, backend=backend)
    assert info.tolist() == [[0, 4]] and info.dtype == torch.int64
    assert t_starts.tolist() == [1.0, 1.25, 2.0, 2.25] and t_ends.tolist() == [1.25, 1.5, 2.25, 2.5]
    # jitter: t0 = 1 + 0.5 * 0.25; kept where the midpoint x is in cell 0 or 2 (x = -0.5 is cell 1's face).
    info, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far, (BOX, occupied), 0.25,
                                        offsets=torch.tensor([0.5]), backend=backend)
    assert t_starts.tolist() == [1.125, 1.875, 2.125] and t_ends.tolist() == [1.375, 2.125, 2.375]
    # clipping: the last interval ends at t_far
    _, t_starts, t_ends = march_rays(rays_o, rays_d, t_near, t_far - 0.625, (BOX, occupied), 0.25, backend=backend)
    assert t_starts.tolist() == [1.0, 1.25, 2.0, 2.25] and t_ends.tolist() == [1.25, 1.5, 2.25, 2.375]


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_tie_at_cell_face_goes_up(backend):
    """A midpoint exactly on the face between cells 0 and 1 belongs to cell 1; on the lower aabb face
    it is in cell 0, on the upper one outside."""
    _available(backend)
    rays_o, rays_d = torch.tensor([[-1.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    t_near, t_far = torch.tensor([0.5]), torch.tensor([1.5])  # one interval [0.5, 1.5], midpoint x = 0
    for occupied, expected in (([False, True], 1), ([True, False], 0)):
        grid = (BOX, torch.tensor(occupied).reshape(2, 1, 1))
        info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, grid, 1.0, backend=backend)
        assert info[0, 1] == expected
    info, _, _ = march_rays(rays_o, rays_d, torch.tensor([1.5]), torch.tensor([2.5]),
                            (BOX, torch.ones(2, 1, 1, dtype=torch.bool)), 1.0, backend=backend)  # mid x = 1
    assert info[0, 1] == 0
    info, _, _ = march_rays(rays_o, rays_d, torch.tensor([-0.5]), torch.tensor([0.5]),
                            (BOX, torch.tensor([True, False]).reshape(2, 1, 1)), 1.0, backend=backend)  # mid x = -1
    assert info[0, 1] == 1


@given(p=problems())
def test_reference_invariants(p):
    info, t_starts, t_ends = _call(p, "torch")
    t_near, t_far, step = p["t_near"], p["t_far"], p["step_size"]
    t0 = t_near if p["offsets"] is None else t_near + p["offsets"] * step
    counts = info[:, 1]
    assert info.dtype == torch.int64 and (info[:, 0] == torch.cumsum(counts, 0) - counts).all()
    assert t_starts.shape == t_ends.shape == (int(counts.sum()),)
    ray_ids = torch.repeat_interleave(torch.arange(len(counts)), counts)
    eps = 1e-6 * (1 + t_far.abs().max()) if len(t_far) else 0
    assert (t_starts < t_ends).all()
    assert (t_ends - t_starts <= step + eps).all()
    assert (t_starts >= t0[ray_ids]).all() and (t_ends <= t_far[ray_ids]).all()
    same_ray = ray_ids[1:] == ray_ids[:-1]
    assert (t_starts[1:][same_ray] >= t_ends[:-1][same_ray]).all()  # sorted and disjoint
    assert (counts[t_far <= t_near] == 0).all()
    # every kept midpoint in an occupied cell
    aabb, occupied = p["grid"]
    mids = (t_starts + t_ends) * 0.5
    points = p["rays_o"][ray_ids] + p["rays_d"][ray_ids] * mids[:, None]
    assert occupied_at(points, aabb, occupied).all()
    # the kept intervals are on the lattice t0 + m step
    m = ((t_starts - t0[ray_ids]) / step).round()
    assert ((t0[ray_ids] + m * step - t_starts).abs() <= eps).all()


@given(p=problems())
def test_full_grid_covers_segment_and_empty_grid_gives_nothing(p):
    aabb, occupied = p["grid"]
    p_empty = {**p, "grid": (aabb, torch.zeros_like(occupied))}
    info, t_starts, _ = _call(p_empty, "torch")
    assert t_starts.numel() == 0 and (info == 0).all()

    # A full grid over a box holding every segment: intervals tile [t0, t_far] with no gap.
    p_full = {**p, "grid": (torch.tensor([-1e3, -1e3, -1e3, 1e3, 1e3, 1e3]), torch.ones(2, 3, 1, dtype=torch.bool))}
    p_full["t_near"] = p["t_near"].clamp(0, 5)
    p_full["t_far"] = p["t_far"].clamp(-5, 5)
    info, t_starts, t_ends = _call(p_full, "torch")
    t0 = p_full["t_near"] if p["offsets"] is None else p_full["t_near"] + p["offsets"] * p["step_size"]
    t_far = p_full["t_far"]
    covered = t_far > t0
    assert ((info[:, 1] > 0) == covered).all()
    first, last = info[covered, 0], info[covered, 0] + info[covered, 1] - 1
    assert torch.equal(t_starts[first], t0[covered]) and torch.equal(t_ends[last], t_far[covered])
    ray_ids = torch.repeat_interleave(torch.arange(len(t0)), info[:, 1])
    same_ray = ray_ids[1:] == ray_ids[:-1]
    assert torch.equal(t_starts[1:][same_ray], t_ends[:-1][same_ray])  # no gaps


def test_missed_rays_give_no_samples():
    rays_o = torch.tensor([[3.0, 3.0, 3.0], [-3.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, BOX)
    info, t_starts, _ = march_rays(rays_o, rays_d, t_near, t_far, (BOX, torch.ones(4, 4, 4, dtype=torch.bool)),
                                   0.1, backend="torch")
    assert hit.tolist() == [False, True, False]
    assert info[:, 1].tolist() == [0, 20, 0]


# ---- every fast backend against the reference: identical counts, bitwise t ---------------------


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    small = interpreted(device, backend)
    p = data.draw(problems(max_rays=6, max_steps=8) if small else problems(max_rays=120, max_steps=80), label="p")
    assert_matches_reference(p, backend, device, strided=data.draw(st.booleans(), label="non_contiguous"))


def assert_matches_reference(p, backend, device, strided):
    """`backend`'s march of problem `p` equals the reference's: the same counts, t bitwise."""
    expected = _call(p, "torch")
    actual = _call(p, backend, device, strided)
    for name, a, e in zip(("packed_info", "t_starts", "t_ends"), actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, f"{backend} {name}: {a.shape} != {e.shape}"
        assert torch.equal(a.cpu(), e), f"{backend} {name} differs"


@pytest.mark.parametrize("device,backend", backend_params())
def test_many_rays_one_program(device, backend):
    """More rays than one Triton tile / one CPU grain, with rays of very different lengths."""
    g = torch.Generator().manual_seed(1)
    n = 150 if interpreted(device, backend) else 3000
    rays_o = torch.rand(n, 3, generator=g) * 1.8 - 0.9
    rays_d = torch.randn(n, 3, generator=g)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, BOX)
    grid = (BOX, torch.rand(5, 6, 7, generator=g) < 0.4)
    step = 0.5 if interpreted(device, backend) else 0.05
    expected = march_rays(rays_o, rays_d, t_near, t_far, grid, step, backend="torch")
    actual = march_rays(*(x.to(device) for x in (rays_o, rays_d, t_near, t_far)), tuple(x.to(device) for x in grid),
                        step, backend=backend)
    assert all(torch.equal(a.cpu(), e) for a, e in zip(actual, expected))


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.march_rays_triton if backend == "triton" else torch.ops.fastnerf.march_rays
    rays_o = torch.tensor([[-3.0, 0.1, 0.2], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], device=device)
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.2, 1.0], [1.0, 1.0, 1.0]], device=device)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, BOX.to(device))
    occupied = (torch.arange(27, device=device).reshape(3, 3, 3) % 2) == 0
    for offsets in (None, torch.tensor([0.1, 0.5, 0.9], device=device)):
        torch.library.opcheck(op.default, (rays_o, rays_d, t_near, t_far, BOX.to(device), occupied, 0.5, offsets))


def test_accepts_an_occupancy_grid():
    grid = OccupancyGrid.from_occupancy(BOX, torch.ones(2, 2, 2, dtype=torch.bool))
    rays_o, rays_d = torch.tensor([[-2.0, 0.5, 0.5]]), torch.tensor([[1.0, 0.0, 0.0]])
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, grid.aabb)
    info, _, _ = march_rays(rays_o, rays_d, t_near, t_far, grid, 0.5)
    assert info.tolist() == [[0, 4]]


# ---- bad input ----------------------------------------------------------------------------------


def _good():
    rays_o, rays_d = torch.zeros(4, 3), torch.ones(4, 3)
    return dict(rays_o=rays_o, rays_d=rays_d, t_near=torch.zeros(4), t_far=torch.ones(4),
                grid=(BOX.clone(), torch.ones(2, 2, 2, dtype=torch.bool)), step_size=0.1)


BAD = {
    "rays_o float64": (dict(rays_o=torch.zeros(4, 3, dtype=torch.float64)), "rays_o"),
    "rays_o [N,4]": (dict(rays_o=torch.zeros(4, 4)), "rays_o"),
    "rays_d rows": (dict(rays_d=torch.ones(3, 3)), "rays_d"),
    "t_near 2-d": (dict(t_near=torch.zeros(4, 1)), "t_near"),
    "t_far wrong length": (dict(t_far=torch.ones(5)), "t_far"),
    "t_far inf": (dict(t_far=torch.tensor([1.0, float("inf"), 1.0, 1.0])), "t_far"),
    "t_near nan": (dict(t_near=torch.tensor([0.0, float("nan"), 0.0, 0.0])), "t_near"),
    "step_size 0": (dict(step_size=0.0), "step_size"),
    "step_size negative": (dict(step_size=-0.1), "step_size"),
    "step_size nan": (dict(step_size=float("nan")), "step_size"),
    "step_size bool": (dict(step_size=True), "step_size"),
    "step_size too small": (dict(step_size=1e-9), "step_size"),
    "offsets 1.0": (dict(offsets=torch.tensor([0.0, 0.5, 1.0, 0.2])), "offsets"),
    "offsets negative": (dict(offsets=torch.tensor([0.0, -0.5, 0.1, 0.2])), "offsets"),
    "offsets wrong length": (dict(offsets=torch.zeros(3)), "offsets"),
    "offsets float64": (dict(offsets=torch.zeros(4, dtype=torch.float64)), "offsets"),
    "grid not a grid": (dict(grid="grid"), "grid"),
    "grid occupied float": (dict(grid=(BOX, torch.ones(2, 2, 2))), "grid occupied"),
    "grid occupied 2-d": (dict(grid=(BOX, torch.ones(2, 2, dtype=torch.bool))), "grid occupied"),
    "grid occupied empty axis": (dict(grid=(BOX, torch.ones(2, 0, 2, dtype=torch.bool))), "grid occupied"),
    "grid aabb inverted": (dict(grid=(-BOX, torch.ones(2, 2, 2, dtype=torch.bool))), "grid aabb"),
}


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    _available(backend)
    change, name = BAD[case]
    kwargs = {**_good(), **change}
    with pytest.raises(ValueError, match=name):
        march_rays(**kwargs, backend=backend)


def test_native_op_checks_itself():
    _available("cpp")
    k = _good()
    args = [k["rays_o"], k["rays_d"], k["t_near"], torch.full((4,), float("inf")), *k["grid"], 0.1, None]
    with pytest.raises(RuntimeError, match="finite"):
        torch.ops.fastnerf.march_rays(*args)
    args[3], args[5] = k["t_far"], torch.ones(2, 2, 2)
    with pytest.raises(RuntimeError, match="occupied"):
        torch.ops.fastnerf.march_rays(*args)

