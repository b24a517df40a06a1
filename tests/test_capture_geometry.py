"""The geometry of a capture: COLMAP (OpenCV) poses to OpenGL, the upright centred frame, the
similarity alignment, and COLMAP camera models in nerfstudio's keys."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from fastnerf.cameras import look_at
from fastnerf.capture import camera_centre_error, umeyama
from fastnerf.capture.orient import opengl_c2w, orient, rotation_onto
from fastnerf.capture.transforms import intrinsics_keys
from fastnerf.errors import UserError


def _random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _colmap_poses(c2w_gl: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world [N,4,4] -> COLMAP cam_from_world [N,3,4] (OpenCV axes)."""
    c2w_cv = c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0])
    return np.linalg.inv(c2w_cv)[:, :3, :]


def test_opencv_poses_become_opengl_cameras_looking_along_minus_z():
    eye = np.array([[3.0, 0.0, 1.0], [0.0, -2.0, 0.5]])
    c2w = look_at(torch.from_numpy(eye), (0.0, 0.0, 0.0)).numpy()
    back = opengl_c2w(_colmap_poses(c2w))
    assert np.allclose(back, c2w, atol=1e-12)
    # COLMAP: a point in front of the camera has positive z in camera space
    cam_from_world = _colmap_poses(c2w)
    assert (np.einsum("nij,j->ni", cam_from_world[:, :, :3], np.zeros(3)) + cam_from_world[:, :, 3])[:, 2].min() > 0


@given(st.integers(0, 10_000))
def test_rotation_onto_turns_one_direction_onto_another(seed):
    rng = np.random.default_rng(seed)
    source, target = rng.normal(size=3), rng.normal(size=3)
    for a, b in ((source, target), (source, -source), (source, source)):
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
        rotation = rotation_onto(a, b)
        assert np.allclose(rotation @ a, b, atol=1e-9)
        assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9) and np.linalg.det(rotation) == pytest.approx(1)


def test_orient_undoes_an_arbitrary_colmap_frame():
    """A rig around a box, seen through a random similarity (COLMAP's arbitrary frame): orient puts
    +Z up, the box centred with half-side 1, and the cameras where a similarity of the truth says."""
    n = 16
    azimuth = np.linspace(0, 2 * np.pi, n, endpoint=False)
    eye = np.stack([2.5 * np.cos(azimuth), 2.5 * np.sin(azimuth), 1.0 + 0.3 * np.sin(3 * azimuth)], -1)
    truth = look_at(torch.from_numpy(eye), (0.0, 0.0, 0.0)).numpy()
    points = np.random.default_rng(0).uniform([-0.5, -0.5, -0.25], [0.5, 0.5, 0.25], size=(2000, 3))
    scale, rotation, shift = 3.7, _random_rotation(7), np.array([4.0, -1.0, 2.0])
    colmap_c2w = truth.copy()
    colmap_c2w[:, :3, :3] = rotation @ truth[:, :3, :3]
    colmap_c2w[:, :3, 3] = scale * truth[:, :3, 3] @ rotation.T + shift
    oriented = orient(_colmap_poses(colmap_c2w), scale * points @ rotation.T + shift)
    assert np.allclose(oriented.c2w[:, :3, 1].mean(0) / np.linalg.norm(oriented.c2w[:, :3, 1].mean(0)), [0, 0, 1], atol=1e-9)
    assert np.allclose(oriented.aabb[3:], -oriented.aabb[:3]) and oriented.aabb.max() == pytest.approx(1.0)
    assert oriented.aabb[5] == pytest.approx(0.5, rel=0.03)  # the box keeps the points' proportions (0.25 / 0.5)
    assert camera_centre_error(oriented.c2w[:, :3, 3], truth[:, :3, 3])["max"] < 1e-6
    # the recorded similarity maps COLMAP's centres onto the written ones
    mapped = colmap_c2w[:, :3, 3] @ oriented.colmap_to_scene[:3, :3].T + oriented.colmap_to_scene[:3, 3]
    assert np.allclose(mapped, oriented.c2w[:, :3, 3], atol=1e-9)


def test_orient_refuses_too_few_points():
    c2w = look_at(torch.tensor([[3.0, 0.0, 1.0]] * 3, dtype=torch.float64), (0.0, 0.0, 0.0)).numpy()
    with pytest.raises(UserError, match="3 sparse points"):
        orient(_colmap_poses(c2w), np.zeros((3, 3)))


def test_umeyama_recovers_a_similarity_and_measures_what_is_left():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(20, 3))
    rotation = _random_rotation(4)
    target = 2.5 * source @ rotation.T + np.array([1.0, 2.0, 3.0])
    scale, found, shift = umeyama(source, target)
    assert scale == pytest.approx(2.5) and np.allclose(found, rotation) and np.allclose(shift, [1, 2, 3])
    noisy = target.copy()
    noisy[0] += np.array([0.0, 0.0, 1.0])
    error = camera_centre_error(source, noisy)
    assert 0 < error["mean"] < error["max"] < 1.0 / error["rig_size"]
    with pytest.raises(ValueError, match="N >= 3"):
        umeyama(source[:2], target[:2])


@pytest.mark.parametrize("model, params, expected", [
    ("SIMPLE_PINHOLE", [100.0, 50.0, 40.0], {"camera_model": "PINHOLE", "fl_x": 100.0, "fl_y": 100.0}),
    ("SIMPLE_RADIAL", [100.0, 50.0, 40.0, 0.1], {"camera_model": "OPENCV", "k1": 0.1, "k2": 0.0, "p1": 0.0, "p2": 0.0}),
    ("RADIAL", [100.0, 50.0, 40.0, 0.1, -0.02], {"camera_model": "OPENCV", "k1": 0.1, "k2": -0.02, "p2": 0.0}),
    ("OPENCV", [100.0, 90.0, 50.0, 40.0, 0.1, -0.02, 0.001, 0.002],
     {"camera_model": "OPENCV", "fl_y": 90.0, "k2": -0.02, "p1": 0.001, "p2": 0.002}),
    ("OPENCV_FISHEYE", [100.0, 90.0, 50.0, 40.0, 0.1, 0.2, 0.3, 0.4],
     {"camera_model": "OPENCV_FISHEYE", "k1": 0.1, "k4": 0.4, "cx": 50.0, "cy": 40.0}),
])
def test_colmap_camera_models_in_nerfstudio_keys(model, params, expected):
    assert intrinsics_keys("OPENCV", [100.0, 90.0, 50.0, 40.0, 0, 0, 0, 0], 100, 80)["camera_model"] == "PINHOLE"
    keys = intrinsics_keys(model, params, 100, 80)
    assert keys["w"] == 100 and keys["h"] == 80
    assert {k: keys[k] for k in expected} == expected
    assert math.isclose(keys["cx"], 50.0) and ("p1" not in keys) == (expected["camera_model"] != "OPENCV")
