"""fastnerf.data.bounds: when a dataset looks unbounded, how far unbounded rays reach, and what
Instant-NGP's aabb_scale changes."""

import json
import math

import pytest
import torch

from fastnerf.cameras import Camera, look_at
from fastnerf.data import Dataset, load
from fastnerf.data.bounds import far_plane, inner_box, unbounded_reason
from fastnerf.data.writers import write_ngp

BOX = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])


def dataset_with(eyes, targets=(0.0, 0.0, 0.0), **kwargs) -> Dataset:
    eyes = torch.as_tensor(eyes, dtype=torch.float32)
    cameras = Camera.from_fov(look_at(eyes, torch.as_tensor(targets, dtype=torch.float32)), 4, 4, math.radians(50))
    return Dataset(torch.zeros(len(eyes), 4, 4, 3), cameras, **kwargs)


def orbit(radius: float, n: int = 6) -> list:
    return [[radius * math.cos(2 * math.pi * k / n), radius * math.sin(2 * math.pi * k / n), 0.5] for k in range(n)]


def test_an_object_orbit_with_a_near_far_around_the_box_is_bounded():
    assert unbounded_reason(dataset_with(orbit(4.0), aabb=BOX, near=2.0, far=6.0), BOX) is None


def test_cameras_inside_the_box_looking_out_are_unbounded():
    dataset = dataset_with(orbit(0.3), targets=(0.0, 0.0, 3.0), aabb=BOX)  # a room: looking outward
    assert "inside the scene box" in unbounded_reason(dataset, BOX)


def test_a_far_plane_far_past_the_box_is_unbounded():
    reason = unbounded_reason(dataset_with(orbit(4.0), aabb=BOX, near=2.0, far=60.0), BOX)
    assert "far plane (60)" in reason
    assert unbounded_reason(dataset_with(orbit(4.0), aabb=BOX, far=9.0), BOX) is None, "just past the corners"


def test_forward_facing_captures_never_suggest_unbounded():
    dataset = dataset_with(orbit(0.3), targets=(0.0, 0.0, 3.0), far=100.0, forward_facing=True)
    assert unbounded_reason(dataset, BOX) is None


def test_far_plane_is_the_data_s_else_many_box_diagonals():
    assert far_plane(dataset_with(orbit(4.0), far=30.0), BOX) == 30.0
    reach = far_plane(dataset_with(orbit(4.0)), BOX)
    assert reach > 100 * float((BOX[3:] - BOX[:3]).norm())


def test_ngp_aabb_scale_is_the_outer_cube_around_the_unit_cube(tmp_path):
    """aabb_scale 8: the dataset's box is the cube Instant-NGP marches (8 unit cubes wide), the
    inner box of an unbounded model its unit cube, the far plane its corners; a bounded teacher
    is told the scene looks unbounded."""
    eyes = torch.tensor(orbit(2.0, 8))
    cameras = Camera.from_fov(look_at(eyes, torch.zeros(3)), 4, 4, math.radians(50))
    write_ngp(tmp_path, torch.rand(8, 4, 4, 4), cameras, aabb_scale=8)
    dataset = load(tmp_path, split="all")
    half = 0.5 / 0.33  # the unit cube in world units (Instant-NGP's default scale 0.33, offset 0.5)
    assert dataset.aabb_scale == 8.0
    torch.testing.assert_close(dataset.aabb, torch.tensor([-8 * half] * 3 + [8 * half] * 3))
    torch.testing.assert_close(inner_box(dataset), torch.tensor([-half] * 3 + [half] * 3))
    corner = torch.full((3,), 8 * half)
    expected = max(float((corner * torch.tensor(signs) - eye).norm()) for eye in eyes
                   for signs in [(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)])
    assert far_plane(dataset, inner_box(dataset)) == pytest.approx(expected, rel=1e-5)
    assert "aabb_scale is 8" in unbounded_reason(dataset, dataset.aabb)


def test_ngp_explicit_aabb_wins_and_aabb_scale_one_is_bounded(tmp_path):
    eyes = torch.tensor(orbit(4.0, 8))
    cameras = Camera.from_fov(look_at(eyes, torch.zeros(3)), 4, 4, math.radians(50))
    json_path = write_ngp(tmp_path, torch.rand(8, 4, 4, 4), cameras, aabb_scale=1)
    dataset = load(tmp_path, split="all")
    assert dataset.aabb_scale == 1.0 and unbounded_reason(dataset, dataset.aabb) is None
    torch.testing.assert_close(inner_box(dataset), dataset.aabb)
    meta = json.loads(json_path.read_text())
    meta.update(aabb=[-1, -1, -1, 1, 1, 1], aabb_scale=16)
    json_path.write_text(json.dumps(meta))
    dataset = load(tmp_path, split="all")
    assert dataset.aabb_scale is None, "the explicit box is the scene's; aabb_scale described another"
    torch.testing.assert_close(dataset.aabb, BOX)
