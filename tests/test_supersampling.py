"""Supersampling: sub-ray offsets, pixel averaging, sub-ray batches and supersampled renders."""

import pytest
import torch

from fastnerf.cameras import Camera, orbit_path
from fastnerf.data import load
from fastnerf.data.procedural import SCENES, make_scene
from fastnerf.errors import UserError
from fastnerf.models import build_model
from fastnerf.rendering import render
from fastnerf.supersampling import average_subpixels, check_factor, subpixel_offsets
from tiny import TINY_TEACHER

TINY = {**TINY_TEACHER, "steps_per_diagonal": 64}


def test_offsets_are_stratum_centres_or_jittered_within_their_stratum():
    centres = subpixel_offsets(2)
    assert torch.equal(centres, torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]))
    assert torch.equal(subpixel_offsets(1), torch.tensor([[0.5, 0.5]]))
    jittered = subpixel_offsets(3, 500, generator=torch.Generator().manual_seed(0))
    assert jittered.shape == (500, 9, 2)
    strata = torch.floor(jittered * 3)
    expected = torch.floor(subpixel_offsets(3) * 3)
    assert torch.equal(strata, expected.expand_as(strata))
    assert jittered.std(dim=0).min() > 0.05  # really jittered, not the centres again


def test_average_subpixels_groups_consecutive_rays():
    values = torch.arange(24.0).reshape(8, 3)
    assert torch.equal(average_subpixels(values, 1), values)
    assert torch.equal(average_subpixels(values, 2), torch.stack([values[:4].mean(0), values[4:].mean(0)]))
    assert torch.equal(average_subpixels(torch.arange(8.0), 2), torch.tensor([1.5, 5.5]))


@pytest.mark.parametrize("bad", [0, 9, 1.5, True, "2", None])
def test_bad_factors_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="supersample must be an integer in \\[1, 8\\]"):
        check_factor(bad)
    with pytest.raises(ValueError, match="NeRF: supersample"):
        build_model("nerf", supersample=bad, **TINY)
    if bad is not None:  # None is render's "the model's own factor"
        with pytest.raises(UserError, match="render: supersample"):
            render(build_model("nerf", **TINY), orbit_path(1, 4.0, 30.0, 4, 4, 0.8)[0], supersample=bad)


def test_pixel_rays_at_offsets():
    camera = orbit_path(2, 4.0, 30.0, 6, 5, 0.8)
    index, rows, cols = torch.tensor([0, 1, 1]), torch.tensor([0, 4, 2]), torch.tensor([5, 0, 3])
    centre = camera.pixel_rays(index, rows, cols)
    halves = camera.pixel_rays(index, rows, cols, torch.full((3, 2), 0.5))
    for a, b in zip(centre, halves):
        assert torch.equal(a, b)
    corner = camera.pixel_rays(index, rows, cols, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.25, 0.75]]))
    expected = camera.rays_through(index, cols + torch.tensor([0.0, 1.0, 0.25]), rows + torch.tensor([0.0, 1.0, 0.75]))
    torch.testing.assert_close(corner[1], expected[1])
    with pytest.raises(ValueError, match="offsets must be \\[n,2\\]"):
        camera.pixel_rays(index, rows, cols, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="offsets must lie in \\[0, 1\\]"):
        camera.pixel_rays(index, rows, cols, torch.full((3, 2), 1.5))


def _project(camera, index, origins, directions):
    """Pixel coordinates (x, y) where rays from a camera's centre cross its image plane."""
    c2w = camera.c2w[index]
    local = torch.einsum("nji,nj->ni", c2w[:, :3, :3], directions)  # world -> camera: R^T d
    x = camera.fx[index] * local[:, 0] / -local[:, 2] + camera.cx[index]
    y = -camera.fy[index] * local[:, 1] / -local[:, 2] + camera.cy[index]
    assert torch.allclose(origins, c2w[:, :3, 3])
    return x, y


def test_sample_rays_sends_each_pixels_subrays_through_its_own_strata(tmp_path):
    scene = make_scene(SCENES[0], tmp_path, n_train=3, n_val=0, n_test=0, res=8, seed=0, samples_per_axis=1)
    dataset = load(scene, "train")
    batch = dataset.sample_rays(50, torch.Generator().manual_seed(1), supersample=2)
    assert batch["origins"].shape == (200, 3) and batch["directions"].shape == (200, 3)
    assert batch["rgb"].shape == (50, 3)
    plain = dataset.sample_rays(50, torch.Generator().manual_seed(1))
    assert torch.equal(plain["rgb"], batch["rgb"])  # the same pixels are drawn first
    index = torch.arange(50).repeat_interleave(4)
    # recover each pixel's camera by matching its origin, then project the sub-rays
    cameras = dataset.cameras
    which = torch.cdist(batch["origins"], cameras.c2w[:, :3, 3]).argmin(dim=1)
    x, y = _project(cameras, which, batch["origins"], batch["directions"])
    centre_x, centre_y = _project(cameras, which[::4], plain["origins"], plain["directions"])
    col, row = torch.floor(centre_x)[index], torch.floor(centre_y)[index]
    assert torch.all((x >= col - 1e-4) & (x <= col + 1 + 1e-4) & (y >= row - 1e-4) & (y <= row + 1 + 1e-4))
    stratum_x = torch.floor((x - col).clamp(0, 0.9999) * 2).reshape(50, 4)
    stratum_y = torch.floor((y - row).clamp(0, 0.9999) * 2).reshape(50, 4)
    assert torch.equal(stratum_x, torch.tensor([0.0, 1, 0, 1]).expand(50, 4))
    assert torch.equal(stratum_y, torch.tensor([0.0, 0, 1, 1]).expand(50, 4))


@pytest.fixture(scope="module")
def textured_model():
    torch.manual_seed(0)
    model = build_model("nerf", supersample=2, **TINY)
    with torch.no_grad():  # a field with structure, so that averaging shows
        model.position_encoding.table.uniform_(-2.0, 2.0)
    return model


def test_render_averages_the_strata_of_a_twice_as_fine_image(textured_model):
    camera = orbit_path(1, 4.0, 30.0, 9, 7, 0.8)[0]
    fine = Camera(camera.c2w, camera.fx * 2, camera.fy * 2, camera.cx * 2, camera.cy * 2, 18, 14)
    averaged = render(textured_model, camera, chunk=10)  # the model's factor, 2; chunks split pixels
    reference = render(textured_model, fine, supersample=1)
    for key in ("rgb", "depth", "opacity"):
        image = reference[key] if reference[key].dim() == 3 else reference[key][..., None]
        pooled = torch.nn.functional.avg_pool2d(image.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
        torch.testing.assert_close(averaged[key], pooled.reshape(averaged[key].shape), atol=1e-4, rtol=1e-4)
    assert averaged["n_rays"] == 4 * 63 and reference["n_rays"] == 4 * 63
    centre = render(textured_model, camera, supersample=1)
    assert centre["n_rays"] == 63 and (centre["rgb"] - averaged["rgb"]).abs().max() > 1e-3
