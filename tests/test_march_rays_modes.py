"""march_rays' contracted mode and cone stepping (issue 21): contract/uncontract, the reference by
hand and by invariants, every backend equal to it, far rays, points at infinity, bad arguments."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastnerf.ops import march_rays
from fastnerf.ops.march_rays import cone_interval_bound
from fastnerf.reference.march_rays import contract, occupied_at, uncontract
from op_tester import backend_params, interpreted
from test_march_rays import BOX, _available, _call, assert_matches_reference, problems

FAR = dict(contraction="mipnerf360", cone_angle=1 / 256, step_size=2 * math.sqrt(3) / 1024)  # Instant-NGP's


def _rays_along_x(t_near=0.0, t_far=3.0):
    return torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([t_near]), torch.tensor([t_far])


# ---- contract / uncontract ----------------------------------------------------------------------


@given(st.lists(st.floats(-2.0**123, 2.0**123, width=32), min_size=3, max_size=30), st.sampled_from([0, 1]))
def test_contract_maps_everything_into_the_cube_and_the_box_onto_itself(values, box_index):
    """Every finite point short of float32 overflow in ((p - lo) * 2) / (hi - lo) lands in [-2, 2]^3."""
    aabb = [BOX, torch.tensor([0.5, -2.0, 1.0, 1.5, 6.0, 1.25])][box_index]
    points = torch.tensor(values[: len(values) // 3 * 3], dtype=torch.float32).reshape(-1, 3)
    u = contract(points, aabb)
    assert u.dtype == torch.float32 and u.shape == points.shape
    assert (u.abs() <= 2).all()  # finite in, [-2, 2] out: all of space
    normalised = ((points - aabb[:3]) * 2) / (aabb[3:] - aabb[:3]) - 1
    inside = (normalised.abs() <= 1).all(1)
    assert torch.equal(u[inside], normalised[inside])  # the box: only normalised
    assert ((u[~inside].abs().amax(1) > 1) | (normalised[~inside].abs().amax(1) <= 1)).all()


def test_contract_at_infinity_and_by_hand():
    u = contract(torch.tensor([[3.0, 0.0, 0.0], [0.0, -5.0, 0.5], [1e30, 0.0, 0.0], [math.inf, 0.0, 0.0]]), BOX)
    assert torch.allclose(u[0], torch.tensor([5 / 3, 0.0, 0.0]))  # s = (2 - 1/3) / 3
    assert torch.allclose(u[1], torch.tensor([0.0, -9 / 5, 0.5 * 9 / 25]))  # s = (2 - 1/5) / 5
    assert u[2].tolist() == [2.0, 0.0, 0.0]
    assert u[3, 0].isnan()  # infinity itself has no cell: never kept


@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=30))
def test_uncontract_inverts_contract(values):
    points = torch.tensor(values[: len(values) // 3 * 3], dtype=torch.float64).reshape(-1, 3)
    aabb = torch.tensor([-1.0, -0.5, 0.0, 2.0, 0.5, 4.0], dtype=torch.float64)
    u = contract(points, aabb)
    assert (u.abs() < 2).all()
    scale = points.abs().amax(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(uncontract(u, aabb) / scale, points / scale, rtol=0, atol=1e-9)
    cells = torch.rand(50, 3, dtype=torch.float64) * 3.98 - 1.99  # grid cell centres: |u| < 2
    torch.testing.assert_close(contract(uncontract(cells, aabb), aabb), cells, rtol=0, atol=1e-9)


def test_contract_gradcheck():
    points = torch.tensor([[0.2, -0.3, 0.9], [3.0, 1.0, -2.0], [0.5, -7.0, 40.0]], dtype=torch.float64,
                          requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: contract(p, BOX.double()), (points,))
    u = torch.tensor([[0.2, -0.3, 0.9], [1.5, 1.0, -1.2], [0.5, -1.9, 1.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: uncontract(x, BOX.double()), (u,))


def test_contracted_cells_by_hand():
    """A 4x1x1 grid over [-2, 2]: the box [-1, 1] is cells 1 and 2; x = 3 contracts to 5/3: cell 3."""
    occupied = torch.tensor([True, False, False, True]).reshape(4, 1, 1)
    points = torch.tensor([[3.0, 0.0, 0.0], [0.5, 0.0, 0.0], [-3.0, 0.0, 0.0], [-0.9, 0.0, 0.0], [1e38, 0, 0]])
    kept = occupied_at(points, BOX, occupied, "mipnerf360")
    assert kept.tolist() == [True, False, True, False, False]  # 1e38: u = 2, on the upper face: outside


# ---- cone stepping by hand ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_cone_steps_by_hand(backend):
    """step 0.25, cone_angle 0.5 from 0 to 3 in a full grid: dt = max(t / 2, 0.25), accumulated."""
    _available(backend)
    grid = (torch.tensor([-10.0, -10, -10, 10, 10, 10]), torch.ones(1, 1, 1, dtype=torch.bool))
    rays = _rays_along_x()
    info, t_starts, t_ends = march_rays(*rays, grid, 0.25, cone_angle=0.5, backend=backend)
    assert t_starts.tolist() == [0.0, 0.25, 0.5, 0.75, 1.125, 1.6875, 2.53125]
    assert t_ends.tolist() == [0.25, 0.5, 0.75, 1.125, 1.6875, 2.53125, 3.0] and info.tolist() == [[0, 7]]
    _, t_starts, _ = march_rays(*rays, grid, 0.25, cone_angle=0.5, max_step=0.5, backend=backend)
    assert t_starts.tolist() == [0.0, 0.25, 0.5, 0.75, 1.125, 1.625, 2.125, 2.625]
    rays = _rays_along_x(1.0, 3.0)  # jitter is a fraction of the first step, dt(1) = 0.5
    _, t_starts, _ = march_rays(*rays, grid, 0.25, cone_angle=0.5, offsets=torch.tensor([0.5]), backend=backend)
    assert t_starts.tolist() == [1.25, 1.875, 2.8125]


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_disparity_steps_by_hand(backend):
    """step 0.25, cone_angle 0.5, disparity_step 0.25 (from t = 2 on) to t = 1e4 in a full grid:
    dt = max(t * max(0.5, t / 4), 0.25) in float32, the plain cone steps below t = 2; past it
    consecutive starts are at least 0.25 / (1 + t / 4) apart in 1/t, so the far plane costs 5
    intervals past t = 2 where cone steps alone take 20."""
    _available(backend)
    grid = (torch.tensor([-1e5, -1e5, -1e5, 1e5, 1e5, 1e5]), torch.ones(1, 1, 1, dtype=torch.bool))
    rays = _rays_along_x(0.0, 1e4)
    info, t_starts, t_ends = march_rays(*rays, grid, 0.25, cone_angle=0.5, disparity_step=0.25, backend=backend)
    expected, t = [], np.float32(0.0)
    while t < 1e4:
        expected.append(float(t))
        t = t + max(t * max(np.float32(0.5), t * np.float32(0.25)), np.float32(0.25))
    assert t_starts.tolist() == expected and t_ends[-1] == 1e4 and info.tolist() == [[0, len(expected)]]
    assert expected[:7] == [0.0, 0.25, 0.5, 0.75, 1.125, 1.6875, 2.53125]  # test_cone_steps_by_hand's, to t = 2
    assert expected[7] == 2.53125 + 2.53125 * (2.53125 / 4)  # then t^2 / 4
    plain, _, _ = march_rays(*rays, grid, 0.25, cone_angle=0.5, backend=backend)
    assert len(expected) == 12 and plain[0, 1] == 27
    # disparity_step 0 is the cone march, bitwise
    zero = march_rays(*rays, grid, 0.25, cone_angle=0.5, disparity_step=0.0, backend=backend)
    assert all(torch.equal(a, b) for a, b in zip(zero, march_rays(*rays, grid, 0.25, cone_angle=0.5, backend=backend)))


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_contracted_march_by_hand(backend):
    """A ray from the centre along +x through a 4x1x1 contracted grid [empty, empty, occupied,
    occupied]: kept from x = 0 (cell 2) to infinity; steps of 0.5 to t = 1, then cone steps."""
    _available(backend)
    grid = (BOX, torch.tensor([False, False, True, True]).reshape(4, 1, 1))
    info, t_starts, t_ends = march_rays(*_rays_along_x(0.0, 1e4), grid, 0.5, contraction="mipnerf360",
                                        cone_angle=0.75, backend=backend)
    expected, t = [], np.float32(0.0)
    while t < 1e4:
        expected.append(float(t))
        t = t + max(t * np.float32(0.75), np.float32(0.5))  # float32 throughout
    assert t_starts.tolist() == expected and t_ends[-1] == 1e4 and info.tolist() == [[0, len(expected)]]
    info, _, _ = march_rays(*_rays_along_x(0.0, 1e4), (BOX, torch.tensor([True, True, False, False]).reshape(4, 1, 1)),
                            0.5, contraction="mipnerf360", cone_angle=0.75, backend=backend)
    assert info.tolist() == [[0, 0]]  # mid 0.25 is x > 0: cell 2, never the lower half
    # contraction alone, fixed steps of 0.5 to t = 4: cell 2 holds x in [0, 1), cell 3 all x >= 1
    for occupied, expected in (([False, False, True, True], 8), ([False, False, True, False], 2)):
        info, t_starts, _ = march_rays(*_rays_along_x(0.0, 4.0), (BOX, torch.tensor(occupied).reshape(4, 1, 1)),
                                       0.5, contraction="mipnerf360", backend=backend)
        assert info.tolist() == [[0, expected]] and t_starts.tolist() == [0.5 * m for m in range(expected)]


# ---- the reference by invariants ----------------------------------------------------------------


@given(p=problems(modes=True))
def test_reference_invariants_with_modes(p):
    info, t_starts, t_ends = _call(p, "torch")
    counts = info[:, 1]
    ray_ids = torch.repeat_interleave(torch.arange(len(counts)), counts)
    assert (t_starts < t_ends).all() and (t_ends <= p["t_far"][ray_ids]).all()
    assert (t_starts >= p["t_near"][ray_ids]).all()
    same_ray = ray_ids[1:] == ray_ids[:-1]
    assert (t_starts[1:][same_ray] >= t_ends[:-1][same_ray]).all()  # sorted and disjoint
    aabb, occupied = p["grid"]
    mids = (t_starts + t_ends) * 0.5
    points = p["rays_o"][ray_ids] + p["rays_d"][ray_ids] * mids[:, None]
    assert occupied_at(points, aabb, occupied, p["contraction"]).all()
    if p["cone_angle"]:  # each interval as long as its cone step, unless clipped at t_far
        cap = math.inf if p["max_step"] is None else p["max_step"]
        t = t_starts.double()
        dt = (t * (t * p["disparity_step"]).clamp(min=p["cone_angle"])).clamp(min=p["step_size"], max=cap)
        clipped = t_ends == p["t_far"][ray_ids]
        length = (t_ends - t_starts).double()
        assert ((length - dt).abs() <= 1e-6 * (1 + t_ends.double().abs()))[~clipped].all()
        assert (length <= dt * (1 + 1e-6) + 1e-6 * t_ends.double().abs()).all()


@given(p=problems(modes=True, max_reach=1e4))
def test_full_contracted_grid_keeps_every_interval_and_the_bound_holds(p):
    """In a contracted grid with every cell occupied every finite midpoint is kept: the intervals
    tile [start_0, t_far], and their number is within cone_interval_bound."""
    aabb, occupied = p["grid"]
    p = {**p, "contraction": "mipnerf360", "grid": (aabb, torch.ones_like(occupied))}
    p["rays_o"], p["rays_d"] = torch.zeros_like(p["rays_o"]), torch.full_like(p["rays_d"], 0.1)  # finite points
    info, t_starts, t_ends = _call(p, "torch")
    counts = info[:, 1]
    covered = p["t_far"] > p["t_near"]
    if p["offsets"] is None:
        assert ((counts > 0) == covered).all()
    last = info[:, 0] + counts - 1
    assert torch.equal(t_ends[last[counts > 0]], p["t_far"][counts > 0])
    ray_ids = torch.repeat_interleave(torch.arange(len(counts)), counts)
    same_ray = ray_ids[1:] == ray_ids[:-1]
    assert torch.equal(t_starts[1:][same_ray], t_ends[:-1][same_ray])  # no gaps
    if p["cone_angle"]:  # disparity steps are only longer: the cone bound holds for them too
        bound = cone_interval_bound(p["t_near"].double(), p["t_far"].double(), p["step_size"], p["cone_angle"],
                                    p["max_step"])
        assert (counts <= bound).all()
        if not p["disparity_step"]:
            assert (bound <= 1.5 * counts + 6).all()  # and not wildly above (a bound that cannot fail)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
@given(p=problems(max_rays=20))
def test_cone_angle_zero_is_the_fixed_step_march(backend, p):
    """Old calls are unchanged: cone_angle 0 marches in fixed steps whatever max_step says."""
    _available(backend)
    plain = _call(p, backend)
    explicit = _call({**p, "contraction": None, "cone_angle": 0.0, "max_step": p["step_size"] * 2}, backend)
    assert all(torch.equal(a, e) for a, e in zip(explicit, plain))


# ---- every fast backend against the reference ---------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_modes_match_reference(device, backend, data):
    small = interpreted(device, backend)
    p = data.draw(problems(max_rays=5, max_steps=6, modes=True, max_reach=10.0) if small
                  else problems(max_rays=100, max_steps=60, modes=True), label="p")
    assert_matches_reference(p, backend, device, strided=data.draw(st.booleans(), label="non_contiguous"))


@pytest.mark.parametrize("device,backend", backend_params())
def test_far_rays_and_points_at_infinity(device, backend):
    """Instant-NGP's cone stepping to t = 1e4 (a few thousand intervals, not millions), rays with
    no samples, and rays whose points are infinite or NaN (never kept), on every backend."""
    g = torch.Generator().manual_seed(3)
    n = 3 if interpreted(device, backend) else 64
    rays_o = torch.randn(n, 3, generator=g) * 0.5
    rays_d = torch.randn(n, 3, generator=g)
    rays_o[0] = torch.tensor([math.inf, 0.0, 0.0])
    rays_d[1] = torch.tensor([1e38, -1e38, 0.0])  # p overflows to infinity past t = 4
    if n > 3:
        rays_o[3, 1] = math.nan
        rays_d[4] = 0.0
    t_near, t_far = torch.zeros(n), torch.full((n,), 1e4)
    t_far[2 % n] = -1.0  # no samples
    grid = (BOX, torch.rand(16, 16, 16, generator=g) < 0.5)
    args = (rays_o, rays_d, t_near, t_far)
    # the interpreter runs a few milliseconds a step: a wider cone there, 70 steps instead of 2,700
    kwargs = dict(contraction=FAR["contraction"], cone_angle=0.25 if interpreted(device, backend) else FAR["cone_angle"])
    expected = march_rays(*args, grid, FAR["step_size"], **kwargs, backend="torch")
    assert expected.packed_info[0, 1] == 0 and expected.packed_info[2, 1] == 0
    assert expected.packed_info[1, 1] <= 4 / FAR["step_size"] + 1  # only the finite stretch
    assert expected.packed_info[:, 1].max() < 3000
    actual = march_rays(*(x.to(device) for x in args), tuple(x.to(device) for x in grid), FAR["step_size"],
                        **kwargs, backend=backend)
    assert all(torch.equal(a.cpu(), e) for a, e in zip(actual, expected))


@pytest.mark.parametrize("device,backend", backend_params())
def test_modes_opcheck(device, backend):
    op = torch.ops.fastnerf.march_rays_triton if backend == "triton" else torch.ops.fastnerf.march_rays
    rays_o = torch.tensor([[-3.0, 0.1, 0.2], [0.0, 0.0, 0.0]], device=device)
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.2, 1.0]], device=device)
    t_near, t_far = torch.tensor([0.0, 0.1], device=device), torch.tensor([5.0, 6.0], device=device)
    occupied = (torch.arange(27, device=device).reshape(3, 3, 3) % 2) == 0
    offsets = torch.tensor([0.1, 0.9], device=device)
    args = (rays_o, rays_d, t_near, t_far, BOX.to(device), occupied, 0.5, offsets, "mipnerf360", 0.2, 1.0)
    torch.library.opcheck(op.default, args)
    torch.library.opcheck(op.default, args[:-1] + (None, 0.05))  # with disparity_step


# ---- empty input and bad arguments --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_no_rays(backend):
    _available(backend)
    empty = torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0)
    info, t_starts, t_ends = march_rays(*empty, (BOX, torch.ones(2, 2, 2, dtype=torch.bool)), 0.1,
                                        contraction="mipnerf360", cone_angle=0.01, backend=backend)
    assert info.shape == (0, 2) and t_starts.shape == t_ends.shape == (0,)


BAD_MODES = {
    "contraction unknown": (dict(contraction="mipnerf"), "contraction"),
    "contraction bool": (dict(contraction=True), "contraction"),
    "cone_angle negative": (dict(cone_angle=-0.1), "cone_angle"),
    "cone_angle nan": (dict(cone_angle=math.nan), "cone_angle"),
    "cone_angle inf": (dict(cone_angle=math.inf), "cone_angle"),
    "cone_angle string": (dict(cone_angle="0.1"), "cone_angle"),
    "max_step zero": (dict(max_step=0.0), "max_step"),
    "max_step negative": (dict(max_step=-1.0), "max_step"),
    "max_step below step_size": (dict(max_step=0.05), "max_step"),
    "max_step nan": (dict(max_step=math.nan), "max_step"),
    "disparity_step negative": (dict(cone_angle=0.1, disparity_step=-0.1), "disparity_step"),
    "disparity_step nan": (dict(cone_angle=0.1, disparity_step=math.nan), "disparity_step"),
    "disparity_step inf": (dict(cone_angle=0.1, disparity_step=math.inf), "disparity_step"),
    "disparity_step without cone_angle": (dict(disparity_step=0.1), "disparity_step.*cone_angle > 0"),
    "cone too many intervals": (dict(cone_angle=1e-6, t_far=torch.full((4,), 1e12)), "2\\*\\*24"),
    "cone steps too small for float32 t": (dict(cone_angle=1e-9, t_near=torch.full((4,), 1e6),
                                                t_far=torch.full((4,), 1e6 + 1)), "would not advance"),
    "cone capped steps too small": (dict(cone_angle=0.1, max_step=0.1, t_far=torch.full((4,), 1e6)),
                                    "would not advance"),
}


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
@pytest.mark.parametrize("case", list(BAD_MODES))
def test_bad_mode_names_the_argument(backend, case):
    _available(backend)
    change, name = BAD_MODES[case]
    kwargs = {**dict(rays_o=torch.zeros(4, 3), rays_d=torch.ones(4, 3), t_near=torch.zeros(4), t_far=torch.ones(4),
                     grid=(BOX, torch.ones(2, 2, 2, dtype=torch.bool)), step_size=0.1), **change}
    with pytest.raises(ValueError, match=name):
        march_rays(**kwargs, backend=backend)


def test_a_far_cone_march_is_accepted():
    """t_far = 1e4 with cone_angle 1/256 is a few thousand intervals: no 2**24 error."""
    bound = cone_interval_bound(torch.zeros(1, dtype=torch.float64), torch.full((1,), 1e4, dtype=torch.float64),
                                FAR["step_size"], FAR["cone_angle"])
    assert 2000 < float(bound) < 4000


def test_native_op_checks_its_mode():
    _available("cpp")
    args = [torch.zeros(4, 3), torch.ones(4, 3), torch.zeros(4), torch.ones(4), BOX, torch.ones(2, 2, 2, dtype=torch.bool),
            0.1, None]
    for extra, word in ((("other", 0.0, None), "contraction"), ((None, -1.0, None), "cone_angle"),
                        ((None, 0.1, 0.01), "max_step"), ((None, 0.1, None, -1.0), "disparity_step"),
                        ((None, 0.0, None, 0.1), "needs cone stepping")):
        with pytest.raises(RuntimeError, match=word):
            torch.ops.fastnerf.march_rays(*args, *extra)
