"""Cameras: rays against an independent pinhole projection, batching, resizing, paths."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnerf.cameras import Camera, look_at, mean_pose, orbit_path, spiral_path


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_c2w(seed: int) -> np.ndarray:
    c2w = np.eye(4)
    c2w[:3, :3] = random_rotation(seed)
    c2w[:3, 3] = np.random.default_rng(seed + 1).normal(size=3) * 3
    return c2w


def project(point_world: np.ndarray, c2w: np.ndarray, fx, fy, cx, cy) -> np.ndarray:
    """Independent pinhole model: world point -> (column, row) continuous pixel coordinates."""
    x, y, z = (np.linalg.inv(c2w) @ np.append(point_world, 1.0))[:3]
    assert z < 0, "point must lie in front of the camera (-Z)"
    return np.array([fx * x / -z + cx, -fy * y / -z + cy])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(1, 7),
    height=st.integers(1, 7),
    fx=st.floats(2.0, 50.0),
    aspect=st.floats(0.5, 2.0),
    cx_shift=st.floats(-2.0, 2.0),
    cy_shift=st.floats(-2.0, 2.0),
)
def test_rays_match_pinhole_projection(seed, width, height, fx, aspect, cx_shift, cy_shift):
    c2w = random_c2w(seed)
    fy, cx, cy = fx * aspect, width / 2 + cx_shift, height / 2 + cy_shift
    camera = Camera(torch.tensor(c2w, dtype=torch.float32), fx, fy, cx, cy, width, height)
    origins, directions = camera.rays()
    assert origins.shape == directions.shape == (height, width, 3)
    np.testing.assert_allclose(directions.norm(dim=-1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(origins.numpy(), np.broadcast_to(c2w[:3, 3], (height, width, 3)), atol=1e-5)
    for row in range(height):
        for col in range(width):
            point = origins[row, col].double().numpy() + 2.0 * directions[row, col].double().numpy()
            pixel = project(point, c2w.astype(np.float32).astype(np.float64), fx, fy, cx, cy)
            np.testing.assert_allclose(pixel, [col + 0.5, row + 0.5], atol=2e-4)


def test_centre_pixel_looks_down_minus_z_with_y_up():
    c2w = torch.eye(4)
    camera = Camera(c2w, 10.0, 10.0, 1.5, 1.5, 3, 3)
    _, directions = camera.rays()
    torch.testing.assert_close(directions[1, 1], torch.tensor([0.0, 0.0, -1.0]))
    assert directions[0, 1, 1] > 0, "row 0 is the top of the image: +Y"
    assert directions[1, 2, 0] > 0, "column 2 is the right of the image: +X"


def test_batch_rays_equal_single_rays_and_pixel_rays():
    cameras = orbit_path(5, 3.0, 20.0, 6, 4, 0.9)
    origins, directions = cameras.rays()
    assert directions.shape == (5, 4, 6, 3)
    single_o, single_d = cameras[3].rays()
    torch.testing.assert_close(directions[3], single_d)
    torch.testing.assert_close(origins[3], single_o)
    index = torch.tensor([0, 4, 2])
    rows, cols = torch.tensor([0, 3, 2]), torch.tensor([5, 0, 1])
    o, d = cameras.pixel_rays(index, rows, cols)
    torch.testing.assert_close(d, directions[index, rows, cols])
    torch.testing.assert_close(o, origins[index, rows, cols])


def test_indexing_len_batch_and_to():
    cameras = orbit_path(4, 2.0, 10.0, 8, 8, 1.0)
    assert cameras.is_batch and len(cameras) == 4
    single = cameras[1]
    assert not single.is_batch and single.c2w.shape == (4, 4) and single.fx.shape == ()
    assert len(cameras[1:3]) == 2 and len(cameras[torch.tensor([0, 3, 3])]) == 3
    torch.testing.assert_close(cameras[-1].c2w, cameras.c2w[3])
    with pytest.raises(TypeError):
        len(single)
    with pytest.raises(TypeError):
        single[0]
    with pytest.raises(IndexError):
        cameras[4]
    assert len(single.batch()) == 1 and single.batch().c2w.shape == (1, 4, 4)
    moved = cameras.to("cpu")
    assert moved.device.type == "cpu" and len(moved) == 4
    both = Camera.cat([cameras, single])
    assert len(both) == 5
    torch.testing.assert_close(both.c2w[4], single.c2w)


def test_downscale_rays_pass_through_the_same_image_points():
    camera = Camera(torch.tensor(random_c2w(3), dtype=torch.float32), 40.0, 36.0, 31.0, 17.0, 64, 36).batch()
    small = camera.downscale(4)
    assert (small.width, small.height) == (16, 9)
    _, small_dirs = small.rays()
    rows, cols = torch.meshgrid(torch.arange(9), torch.arange(16), indexing="ij")
    _, big_dirs = camera.rays_through(torch.zeros(144, dtype=torch.long), (cols.reshape(-1) + 0.5) * 4.0,
                                      (rows.reshape(-1) + 0.5) * 4.0)
    torch.testing.assert_close(small_dirs[0].reshape(-1, 3), big_dirs, atol=1e-6, rtol=0)
    resized = camera.resize(32, 72)
    assert resized.fx.item() == pytest.approx(20.0) and resized.fy.item() == pytest.approx(72.0)
    with pytest.raises(ValueError):
        camera.downscale(0)


def test_from_fov_edge_ray_angle():
    fov = math.radians(60)
    camera = Camera.from_fov(torch.eye(4), 200, 100, fov)
    assert camera.fx.item() == pytest.approx(100 / math.tan(fov / 2))
    assert camera.fy.item() == camera.fx.item() and camera.cx.item() == 100 and camera.cy.item() == 50
    o, d = camera.batch().rays_through(torch.tensor([0]), torch.tensor([0.0]), torch.tensor([50.0]))
    assert math.degrees(math.acos(-d[0, 2].item())) == pytest.approx(30.0, abs=1e-4)


@pytest.mark.parametrize(
    "matrix, reason",
    [
        (torch.zeros(4, 4), "last row"),
        (torch.diag(torch.tensor([1.0, 1.0, 0.0, 1.0])), "singular"),
        (torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])), "not a rotation"),
        (torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0])), "not a rotation"),
        (torch.full((4, 4), float("nan")), "non-finite"),
        (torch.eye(3), "shape"),
    ],
)
def test_bad_c2w_raises_naming_c2w(matrix, reason):
    with pytest.raises(ValueError, match=reason) as info:
        Camera(matrix, 1.0, 1.0, 0.5, 0.5, 1, 1)
    assert "c2w" in str(info.value)


def test_bad_intrinsics_raise():
    with pytest.raises(ValueError, match="fx"):
        Camera(torch.eye(4), -1.0, 1.0, 0.5, 0.5, 1, 1)
    with pytest.raises(ValueError, match="fy"):
        Camera(torch.eye(4)[None].repeat(2, 1, 1), 1.0, torch.ones(3), 0.5, 0.5, 1, 1)
    with pytest.raises(ValueError, match="width"):
        Camera(torch.eye(4), 1.0, 1.0, 0.5, 0.5, 0, 1)


@pytest.mark.parametrize("up", [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0)])
def test_orbit_cameras_look_at_target(up):
    target = torch.tensor([0.3, -0.2, 0.5])
    cameras = orbit_path(8, 4.0, 30.0, 10, 10, 0.8, target=tuple(target.tolist()), up=up)
    centres = cameras.c2w[:, :3, 3]
    forward = -cameras.c2w[:, :3, 2]
    torch.testing.assert_close((centres - target).norm(dim=-1), torch.full((8,), 4.0))
    to_target = (target - centres) / (target - centres).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(forward, to_target, atol=1e-6, rtol=0)
    up_vec = torch.tensor(up)
    elevation = torch.rad2deg(torch.asin(((centres - target) @ up_vec) / 4.0))
    torch.testing.assert_close(elevation, torch.full((8,), 30.0), atol=1e-4, rtol=0)
    assert ((cameras.c2w[:, :3, 1] @ up_vec) > 0).all(), "image up points to the world's up"
    in_plane = (centres - target) - ((centres - target) @ up_vec)[:, None] * up_vec
    in_plane = in_plane / in_plane.norm(dim=-1, keepdim=True)
    step_cosines = (in_plane * in_plane.roll(-1, 0)).sum(-1)
    torch.testing.assert_close(step_cosines, torch.full((8,), math.cos(math.radians(45))), atol=1e-5, rtol=0)


def test_look_at_rejects_degenerate_input():
    with pytest.raises(ValueError, match="coincide"):
        look_at([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="parallel"):
        look_at([0.0, 0.0, 2.0], [0.0, 0.0, 0.0], up=(0.0, 0.0, 1.0))


def test_spiral_path_looks_at_focus_point_around_mean_pose():
    base = look_at(torch.tensor([[0.1 * i, 0.05 * i, 3.0] for i in range(-3, 4)]),
                   torch.zeros(3), up=(0.0, 1.0, 0.0))
    cameras = Camera(base, 20.0, 20.0, 8.0, 6.0, 16, 12)
    spiral = spiral_path(cameras, 30, near=1.0, far=10.0)
    assert len(spiral) == 30 and spiral.width == 16
    centre = mean_pose(cameras.c2w)
    focus_depth = 1 / (0.25 / 1.0 + 0.75 / 10.0)
    focus = centre[:3, 3] - focus_depth * centre[:3, 2]
    forward = -spiral.c2w[:, :3, 2]
    to_focus = focus - spiral.c2w[:, :3, 3]
    to_focus = to_focus / to_focus.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(forward, to_focus, atol=1e-5, rtol=0)
    offsets = spiral.c2w[:, :3, 3] - centre[:3, 3]
    assert offsets.norm(dim=-1).max() < 0.5 and offsets.norm(dim=-1).min() > 0
    with pytest.raises(ValueError):
        spiral_path(cameras[0], 10, near=1.0, far=2.0)


def _defective(seed: int, kind: int) -> torch.Tensor:
    """A camera-to-world matrix that is rigid (kind 0) or broken one way (1..6)."""
    m = torch.as_tensor(random_c2w(seed))
    if kind == 1:
        m[:3, :3] *= 1.01  # scaled past the tolerance
    elif kind == 2:
        m[:3, 0] = -m[:3, 0]  # mirrored: det -1
    elif kind == 3:
        m[3, 2] = 1e-3  # last row off
    elif kind == 4:
        m[1, 2] = float("nan")
    elif kind == 5:
        m[:3, 1] = 0.0  # singular
    elif kind == 6:
        m[:3, :3] *= 1.0 + 2e-4  # scaled within the tolerance: still rigid
    return m


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), kinds=st.lists(st.integers(0, 6), min_size=1, max_size=7))
def test_rigid_checks_agree_for_few_and_many_matrices(seed, kinds):
    """The Python-float path (a few matrices), the batched tensor path and the per-matrix reasons agree."""
    from fastnerf.cameras import checks

    matrices = torch.stack([_defective(seed + i, kind) for i, kind in enumerate(kinds)])
    expected = all(kind in (0, 6) for kind in kinds)
    assert checks._all_rigid_few(matrices) == expected
    assert checks._all_rigid(matrices) == expected
    problems = checks.rigid_transform_problems(matrices)
    assert [index for index, _ in problems] == [i for i, kind in enumerate(kinds) if kind not in (0, 6)]
