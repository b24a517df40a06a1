"""Lens distortion on rays, against pycolmap's own camera models (the definition we follow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastnerf.cameras import Camera, look_at
from fastnerf.distortion import MODELS

pycolmap = pytest.importorskip("pycolmap")

WIDTH, HEIGHT = 40, 30
# (model, pinhole params in COLMAP's order, distortion params): mild and phone-wide-angle strengths.
LENSES = [
    ("SIMPLE_RADIAL", [36.0, 19.0, 16.0], [-0.25]),
    ("RADIAL", [30.0, 21.0, 14.5], [0.12, -0.04]),
    ("OPENCV", [34.0, 31.0, 20.5, 15.5], [-0.3, 0.09, 0.004, -0.003]),
    ("OPENCV", [28.0, 29.0, 20.0, 15.0], [0.058, 0.01, -0.002, 0.001]),
    ("OPENCV_FISHEYE", [18.0, 18.5, 20.0, 15.0], [0.05, -0.01, 0.004, -0.001]),
    ("OPENCV_FISHEYE", [17.0, 17.0, 20.0, 15.0], [0.03, 0.0, 0.0, 0.0]),  # about 80 degrees off axis at the corners
]


def fastnerf_camera(model, pinhole, params, c2w):
    fx, fy, cx, cy = (pinhole[0], pinhole[0], *pinhole[1:]) if len(pinhole) == 3 else pinhole
    return Camera(c2w, fx, fy, cx, cy, WIDTH, HEIGHT, distortion_model=model, distortion=params)


def reprojected(colmap_camera, c2w, directions):
    """Pixels ``[n,2]`` that pycolmap projects world directions ``[n,3]`` of camera ``c2w`` to."""
    local = directions.double().numpy() @ c2w.double().numpy()[:3, :3]  # world -> OpenGL camera axes
    opencv = local * np.array([1.0, -1.0, -1.0])
    return colmap_camera.img_from_cam(opencv)


@pytest.mark.parametrize("model, pinhole, params", LENSES)
def test_rays_reproject_to_their_pixels_through_pycolmap(model, pinhole, params):
    c2w = look_at(torch.tensor([0.3, -2.0, 0.8]), torch.zeros(3))
    camera = fastnerf_camera(model, pinhole, params, c2w)
    colmap_camera = pycolmap.Camera(model=model, width=WIDTH, height=HEIGHT, params=pinhole + params)
    origins, directions = camera.rays()  # every pixel centre
    cols, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    expected = np.stack([cols.ravel(), rows.ravel()], -1)
    np.testing.assert_allclose(reprojected(colmap_camera, c2w, directions.reshape(-1, 3)), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(origins, c2w[:3, 3].expand_as(origins))
    # The image corners and edges, through rays_through (training's path).
    x = torch.tensor([0.0, WIDTH, 0.0, WIDTH, WIDTH / 2, 0.0, 7.25])
    y = torch.tensor([0.0, 0.0, HEIGHT, HEIGHT, 0.0, HEIGHT / 2, 29.5])
    _, corner_dirs = camera.batch().rays_through(torch.zeros(7, dtype=torch.long), x, y)
    np.testing.assert_allclose(reprojected(colmap_camera, c2w, corner_dirs), torch.stack([x, y], -1).numpy(),
                               atol=1e-4, rtol=0)
    # ... and the directions are the ones pycolmap's own inverse gives.
    local = corner_dirs.double().numpy() @ c2w.double().numpy()[:3, :3] * np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(local[:, :2] / local[:, 2:], colmap_camera.cam_from_img(torch.stack([x, y], -1).numpy()),
                               atol=1e-6, rtol=1e-5)


def test_a_distorted_camera_bends_the_rays():
    pinhole = Camera(torch.eye(4), 30.0, 30.0, 20.5, 15.5, WIDTH, HEIGHT)
    bent = Camera(torch.eye(4), 30.0, 30.0, 20.5, 15.5, WIDTH, HEIGHT, distortion_model="RADIAL", distortion=[0.1, 0.0])
    _, straight = pinhole.rays()
    _, curved = bent.rays()
    assert (straight - curved).norm(dim=-1).max() > 1e-2  # barrel distortion: corner rays point further out
    assert (straight[15, 20] - curved[15, 20]).norm() < 1e-6  # the pixel at the principal point is unmoved


def test_no_distortion_is_the_pinhole_camera_bitwise():
    c2w = look_at(torch.tensor([[0.3, -2.0, 0.8], [1.0, 1.0, 1.0]]), torch.zeros(3))
    plain = Camera(c2w, 30.0, 31.0, 20.0, 15.0, WIDTH, HEIGHT)
    zero = Camera(c2w, 30.0, 31.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="OPENCV", distortion=[0.0] * 4)
    assert not zero.has_distortion and zero.distortion_model is None
    for a, b in zip(plain.rays(), zero.rays()):
        assert torch.equal(a, b)
    index, x, y = torch.tensor([0, 1]), torch.tensor([0.0, 3.3]), torch.tensor([7.0, 30.0])
    for a, b in zip(plain.rays_through(index, x, y), zero.rays_through(index, x, y)):
        assert torch.equal(a, b)


def test_distortion_follows_batching_indexing_resizing_and_devices():
    c2w = look_at(torch.tensor([[0.3, -2.0, 0.8], [1.0, 1.0, 1.0], [-1.0, 2.0, 0.5]]), torch.zeros(3))
    params = torch.tensor([[0.1, 0.0, 0.0, 0.0], [0.0, 0.05, 0.001, 0.0], [-0.1, 0.0, 0.0, 0.002]])
    cameras = Camera(c2w, 30.0, 31.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="OPENCV", distortion=params)
    assert cameras[1].distortion_model == "OPENCV" and torch.equal(cameras[1].distortion, params[1])
    assert torch.equal(cameras[0:2].distortion, params[:2]) and torch.equal(cameras[2].batch().distortion, params[2:])
    assert torch.equal(cameras.to("cpu").distortion, params)
    _, batch_dirs = cameras.rays()
    _, single_dirs = cameras[2].rays()
    torch.testing.assert_close(batch_dirs[2], single_dirs)
    # Resizing scales the intrinsics; the lens (in normalised coordinates) stays: same ray through the same spot.
    small = cameras.resize(WIDTH // 2, HEIGHT // 2)
    assert torch.equal(small.distortion, params)
    index, x, y = torch.tensor([0, 2]), torch.tensor([3.0, 11.0]), torch.tensor([5.0, 1.0])
    torch.testing.assert_close(small.rays_through(index, x, y)[1], cameras.rays_through(index, 2 * x, 2 * y)[1])
    # A pinhole and a RADIAL camera share a batch as RADIAL, the pinhole with zeros.
    radial = Camera(c2w[0], 30.0, 31.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="RADIAL", distortion=[0.2, 0.1])
    both = Camera.cat([Camera(c2w[0], 30.0, 31.0, 20.0, 15.0, WIDTH, HEIGHT), radial])
    assert both.distortion_model == "RADIAL"
    assert torch.equal(both.distortion, torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.2, 0.1, 0.0, 0.0]]))
    torch.testing.assert_close(both[1].rays()[1], radial.rays()[1])
    assert not cameras.pinhole().has_distortion and "OPENCV" in repr(cameras)


def test_bad_distortion_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown lens model 'FOV'"):
        Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="FOV", distortion=[0.1])
    with pytest.raises(ValueError, match="RADIAL takes 2 parameters"):
        Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="RADIAL", distortion=[0.1, 0.0, 0.0])
    with pytest.raises(ValueError, match="needs its parameters"):
        Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="OPENCV")
    with pytest.raises(ValueError, match="non-finite"):
        Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="SIMPLE_RADIAL", distortion=[float("nan")])
    fisheye = Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT, distortion_model="OPENCV_FISHEYE", distortion=[0.0] * 4)
    assert fisheye.has_distortion  # an equidistant fisheye is not a pinhole camera
    with pytest.raises(ValueError, match="fisheye"):
        Camera.cat([fisheye, Camera(torch.eye(4), 30.0, 30.0, 20.0, 15.0, WIDTH, HEIGHT)])
    with pytest.raises(ValueError, match="takes pinhole cameras only"):
        fisheye.require_pinhole("the exported light field")
    assert set(MODELS) == {"SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE"}
