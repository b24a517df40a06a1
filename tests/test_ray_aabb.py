"""ray_aabb: the reference by hand and by geometry; every backend bitwise equal to it; opcheck; bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastnerf import reference
from fastnerf.ops import ray_aabb
from op_tester import INTERPRETED_MAX, backend_params, interpreted, non_contiguous, ray_batches

BOX = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
INF, NAN = float("inf"), float("nan")

# (origin, direction, expected t_near, t_far, hit)
HAND = [
    ((-3.0, 0.0, 0.0), (1.0, 0.0, 0.0), 2.0, 4.0, True),  # along +x, parallel to y and z
    ((-3.0, 0.0, 0.0), (2.0, 0.0, 0.0), 1.0, 2.0, True),  # t scales with 1 / |d|
    ((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), 0.0, 1.0, True),  # origin inside: t_near 0
    ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0), 0.0, 0.5, True),
    ((-3.0, -3.0, -3.0), (1.0, 1.0, 1.0), 2.0, 4.0, True),  # diagonal through corners
    ((3.0, 0.0, 0.0), (1.0, 0.0, 0.0), 0.0, 0.0, False),  # box behind the origin
    ((-3.0, 2.0, 0.0), (1.0, 0.0, 0.0), 0.0, 0.0, False),  # parallel to x, outside the y slab
    ((-3.0, 1.0, 0.0), (1.0, 0.0, 0.0), 2.0, 4.0, True),  # in the face plane y = 1: inside the slab
    ((-3.0, -1.0, 0.0), (1.0, 1.0, 0.0), 0.0, 0.0, False),  # touches the edge at one point
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0, 0.0, False),  # zero direction
    ((NAN, 0.0, 0.0), (1.0, 0.0, 0.0), 0.0, 0.0, False),
    ((-3.0, 0.0, 0.0), (INF, 0.0, 0.0), 0.0, 0.0, False),
    ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0), 0.0, 0.0, False),  # on the exit face, leaving
]


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_hand_cases(backend):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    rays_o = torch.tensor([case[0] for case in HAND])
    rays_d = torch.tensor([case[1] for case in HAND])
    t_near, t_far, hit = ray_aabb(rays_o, rays_d, BOX, backend=backend)
    assert hit.tolist() == [case[4] for case in HAND]
    torch.testing.assert_close(t_near, torch.tensor([case[2] for case in HAND]))
    torch.testing.assert_close(t_far, torch.tensor([case[3] for case in HAND]))


@given(batch=ray_batches(max_rays=64))
def test_reference_geometry(batch):
    """Hit segments lie in the box (float64 check), missed rays do not cross it, no NaN."""
    rays_o, rays_d, aabb = batch["rays_o"], batch["rays_d"], batch["aabb"]
    t_near, t_far, hit = reference.ray_aabb.ray_aabb(rays_o, rays_d, aabb)
    assert not torch.isnan(t_near).any() and not torch.isnan(t_far).any()
    assert (t_near >= 0).all() and (t_far[hit] > t_near[hit]).all()
    assert (t_near[~hit] == 0).all() and (t_far[~hit] == 0).all()
    lo, hi = aabb[:3].double(), aabb[3:].double()
    o, d = rays_o.double(), rays_d.double()
    extent = float((hi - lo).max())
    tol = 1e-5 * extent
    for frac in (0.0, 0.5, 1.0):  # the whole hit segment is inside the box
        t = t_near.double() + frac * (t_far.double() - t_near.double())
        p = o + d * t[:, None]
        assert ((p[hit] >= lo - tol) & (p[hit] <= hi + tol)).all()
    # Missed rays that move: sampled densely along t in [0, 10], no point lies well inside the box.
    moving = ~hit & (d != 0).any(1)
    ts = torch.linspace(0, 10, 2001, dtype=torch.float64)
    p = o[moving][:, None, :] + d[moving][:, None, :] * ts[None, :, None]
    assert not ((p > lo + 1e-3) & (p < hi - 1e-3)).all(-1).any()
    # Hit rays with nonzero speed enter at the face or start inside.
    entering = hit & (t_near > 0)
    p = o[entering] + d[entering] * t_near[entering].double()[:, None]
    on_face = ((p - lo).abs() < tol) | ((p - hi).abs() < tol)
    assert on_face.any(1).all()


@pytest.mark.parametrize("device,backend", backend_params())
@given(data=st.data())
def test_matches_reference(device, backend, data):
    small = interpreted(device, backend)
    batch = data.draw(ray_batches(max_rays=INTERPRETED_MAX["rays"] if small else 200), label="rays")
    strided = data.draw(st.booleans(), label="non_contiguous")
    rays_o, rays_d, aabb = (batch[k].to(device) for k in ("rays_o", "rays_d", "aabb"))
    if strided:
        rays_o, rays_d = non_contiguous(rays_o), non_contiguous(rays_d)
    expected = reference.ray_aabb.ray_aabb(batch["rays_o"], batch["rays_d"], batch["aabb"])
    actual = ray_aabb(rays_o, rays_d, aabb, backend=backend)
    for name, a, e in zip(("t_near", "t_far", "hit"), actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, name
        assert torch.equal(a.cpu(), e), f"{backend} {name}: {a.cpu()} != {e}"


@pytest.mark.parametrize("device,backend", backend_params())
def test_opcheck(device, backend):
    op = torch.ops.fastnerf.ray_aabb_triton if backend == "triton" else torch.ops.fastnerf.ray_aabb
    rays_o = torch.tensor([[-3.0, 0.1, 0.2], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], device=device)
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [0.3, -0.2, 1.0], [1.0, 1.0, 1.0]], device=device)
    torch.library.opcheck(op.default, (rays_o, rays_d, BOX.to(device)))


def test_aabb_as_numbers_and_empty_batch():
    t_near, t_far, hit = ray_aabb(torch.zeros(0, 3), torch.zeros(0, 3), (-1, -1, -1, 1, 1, 1))
    assert t_near.shape == (0,) and hit.dtype == torch.bool
    t_near, _, hit = ray_aabb(torch.tensor([[-3.0, 0, 0]]), torch.tensor([[1.0, 0, 0]]), [-1, -1, -1, 1, 1, 1])
    assert hit.item() and math.isclose(t_near.item(), 2.0)


def _good():
    return dict(rays_o=torch.zeros(4, 3), rays_d=torch.ones(4, 3), aabb=BOX.clone())


BAD = {
    "rays_o float64": (dict(rays_o=torch.zeros(4, 3, dtype=torch.float64)), "rays_o"),
    "rays_o [N,2]": (dict(rays_o=torch.zeros(4, 2)), "rays_o"),
    "rays_o 1-d": (dict(rays_o=torch.zeros(12)), "rays_o"),
    "rays_d rows": (dict(rays_d=torch.ones(5, 3)), "rays_d"),
    "rays_d int": (dict(rays_d=torch.ones(4, 3, dtype=torch.int64)), "rays_d"),
    "aabb 5 values": (dict(aabb=torch.zeros(5)), "aabb"),
    "aabb min > max": (dict(aabb=torch.tensor([1.0, -1, -1, -1, 1, 1])), "aabb"),
    "aabb flat axis": (dict(aabb=torch.tensor([-1.0, 0, -1, 1, 0, 1])), "aabb"),
    "aabb inf": (dict(aabb=torch.tensor([-INF, -1, -1, 1, 1, 1])), "aabb"),
    "aabb float64": (dict(aabb=BOX.double()), "aabb"),
    "rays_o list": (dict(rays_o=[[0.0, 0.0, 0.0]] * 4), "rays_o"),
}


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(backend, case):
    import fastnerf

    if backend not in fastnerf.backends.available("cpu"):
        pytest.skip(f"{backend} not available here")
    change, name = BAD[case]
    with pytest.raises(ValueError, match=name):
        ray_aabb(**{**_good(), **change}, backend=backend)


def test_native_op_checks_shapes_itself():
    import fastnerf

    if "cpp" not in fastnerf.backends.available("cpu"):
        pytest.skip("cpp not available here")
    with pytest.raises(RuntimeError, match="aabb"):
        torch.ops.fastnerf.ray_aabb(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(4))

