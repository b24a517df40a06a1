"""Every format written from the same cameras loads to the same rays; images round-trip."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastnerf.cameras import Camera, look_at, mean_pose, orbit_path
from fastnerf.data import Dataset, load
from fastnerf.data.writers import write_blender, write_llff, write_ngp

N_VIEWS, WIDTH, HEIGHT = 9, 12, 8


@pytest.fixture(scope="module")
def cameras():
    return orbit_path(N_VIEWS, 4.0, 25.0, WIDTH, HEIGHT, 0.9)


@pytest.fixture(scope="module")
def rgba():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(N_VIEWS, HEIGHT, WIDTH, 4), dtype=np.uint8)
    pixels[:, 0, :, 3] = 0  # a fully transparent row
    pixels[:, 1, :, 3] = 255  # an opaque row
    return pixels


def composite(pixels: np.ndarray, background) -> np.ndarray:
    rgb, alpha = pixels[..., :3] / 255.0, pixels[..., 3:] / 255.0
    return rgb * alpha + np.asarray(background) * (1 - alpha)


def assert_same_rays(a: Camera, b: Camera):
    origins_a, directions_a = a.rays()
    origins_b, directions_b = b.rays()
    torch.testing.assert_close(origins_a, origins_b, atol=1e-5, rtol=0)
    torch.testing.assert_close(directions_a, directions_b, atol=1e-5, rtol=0)


def test_three_formats_give_the_same_rays(tmp_path, cameras, rgba):
    write_blender(tmp_path / "blender", "train", rgba, cameras)
    write_ngp(tmp_path / "ngp", rgba, cameras)
    write_llff(tmp_path / "llff", rgba[..., :3], cameras, np.tile([[1.0, 8.0]], (N_VIEWS, 1)))
    blender = load(tmp_path / "blender")
    ngp = load(tmp_path / "ngp", split="all")
    llff = load(tmp_path / "llff", split="all", recenter=False, bd_factor=None)
    assert (blender.format, ngp.format, llff.format) == ("blender", "ngp", "llff")
    for dataset in (blender, ngp, llff):
        assert len(dataset) == N_VIEWS and (dataset.width, dataset.height) == (WIDTH, HEIGHT)
        assert_same_rays(dataset.cameras, cameras)
    assert llff.forward_facing and not blender.forward_facing
    assert llff.near == pytest.approx(0.9) and llff.far == pytest.approx(8.0)


def test_images_round_trip_with_alpha_on_background(tmp_path, cameras, rgba):
    write_blender(tmp_path, "train", rgba, cameras)
    background = (0.2, 0.5, 0.9)
    dataset = load(tmp_path, background=background)
    np.testing.assert_allclose(dataset.images.numpy(), composite(rgba, background), atol=1e-6)
    np.testing.assert_allclose(dataset.alphas.numpy(), rgba[..., 3] / 255.0, atol=1e-6)
    torch.testing.assert_close(dataset.background, torch.tensor(background))
    assert dataset.images.dtype == torch.float32 and dataset.images.shape == (N_VIEWS, HEIGHT, WIDTH, 3)


def test_rgb_images_have_no_alphas(tmp_path, cameras, rgba):
    write_ngp(tmp_path, rgba[..., :3], cameras)
    dataset = load(tmp_path, split="all")
    assert dataset.alphas is None
    np.testing.assert_allclose(dataset.images.numpy(), rgba[..., :3] / 255.0, atol=1e-6)


def test_blender_file_path_with_extension_and_default_aabb(tmp_path, cameras, rgba):
    json_path = write_blender(tmp_path, "val", rgba, cameras)
    meta = json.loads(json_path.read_text())
    for frame in meta["frames"]:
        frame["file_path"] += ".png"
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):  # only the original NeRF-synthetic field remains
        del meta[key]
    json_path.write_text(json.dumps(meta))
    dataset = load(tmp_path, split="val")
    assert_same_rays(dataset.cameras, cameras)
    torch.testing.assert_close(dataset.aabb, torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]))
    assert dataset.near is None and dataset.split == "val"


def test_blender_explicit_aabb_and_near_far(tmp_path, cameras, rgba):
    write_blender(tmp_path, "train", rgba, cameras, aabb=(-1, -2, -3, 1, 2, 3), near=2.0, far=6.0)
    dataset = load(tmp_path / "transforms_train.json")
    torch.testing.assert_close(dataset.aabb, torch.tensor([-1.0, -2.0, -3.0, 1.0, 2.0, 3.0]))
    assert (dataset.near, dataset.far) == (2.0, 6.0)


@pytest.mark.parametrize("downscale", [2, 3])
def test_downscale_averages_pixels_and_scales_intrinsics(tmp_path, cameras, rgba, downscale):
    write_blender(tmp_path, "train", rgba, cameras)
    full = load(tmp_path)
    small = load(tmp_path, downscale=downscale)
    assert (small.width, small.height) == (WIDTH // downscale, HEIGHT // downscale)
    assert_same_rays(small.cameras, cameras.downscale(downscale))
    if HEIGHT % downscale == 0 and WIDTH % downscale == 0:
        blocks = full.images.reshape(N_VIEWS, HEIGHT // downscale, downscale, WIDTH // downscale, downscale, 3)
        torch.testing.assert_close(small.images, blocks.mean(dim=(2, 4)))


def test_ngp_per_frame_intrinsics_and_aabb_scale(tmp_path, rgba):
    c2w = look_at(torch.tensor([[0.0, -4.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 2.0]]), torch.zeros(3))
    cameras = Camera(c2w, torch.tensor([10.0, 11.0, 12.0]), torch.tensor([9.0, 10.0, 13.0]),
                     torch.tensor([6.0, 5.5, 6.5]), torch.tensor([4.0, 4.5, 3.5]), WIDTH, HEIGHT)
    write_ngp(tmp_path, rgba[:3], cameras, aabb_scale=4, per_frame_intrinsics=True)
    dataset = load(tmp_path, split="all")
    assert_same_rays(dataset.cameras, cameras)
    half = 4 / 2 / 0.33  # Instant-NGP default scale 0.33 and offset 0.5
    torch.testing.assert_close(dataset.aabb, torch.tensor([-half] * 3 + [half] * 3))


def test_ngp_camera_angle_and_offset_aabb(tmp_path, cameras, rgba):
    json_path = write_ngp(tmp_path, rgba, cameras)
    meta = json.loads(json_path.read_text())
    for key in ("fl_x", "fl_y", "cx", "cy"):
        del meta[key]
    meta["camera_angle_x"] = 0.9
    meta.update(aabb_scale=2, scale=0.5, offset=[0.5, 0.75, 0.25])
    json_path.write_text(json.dumps(meta))
    dataset = load(tmp_path, split="all")
    assert_same_rays(dataset.cameras, cameras)
    # world x uses NGP offset z (0.25), world y offset x (0.5), world z offset y (0.75)
    expected = [(0.5 - 1 - 0.25) / 0.5, (0.5 - 1 - 0.5) / 0.5, (0.5 - 1 - 0.75) / 0.5,
                (0.5 + 1 - 0.25) / 0.5, (0.5 + 1 - 0.5) / 0.5, (0.5 + 1 - 0.75) / 0.5]
    torch.testing.assert_close(dataset.aabb, torch.tensor(expected))


def test_ngp_and_llff_hold_out_every_eighth_frame(tmp_path, cameras, rgba):
    write_ngp(tmp_path, rgba, cameras)
    train, test = load(tmp_path, split="train"), load(tmp_path, split="test")
    assert len(train) == 7 and len(test) == 2
    torch.testing.assert_close(test.cameras.c2w, cameras.c2w[[0, 8]])
    torch.testing.assert_close(train.cameras.c2w, cameras.c2w[[1, 2, 3, 4, 5, 6, 7]])
    np.testing.assert_allclose(test.images.numpy(), composite(rgba[[0, 8]], (1, 1, 1)), atol=1e-6)


def test_ngp_nerfstudio_split_filenames(tmp_path, cameras, rgba):
    json_path = write_ngp(tmp_path, rgba, cameras)
    meta = json.loads(json_path.read_text())
    meta["train_filenames"] = ["images/frame_00002.png", "./images/frame_00005.png"]
    json_path.write_text(json.dumps(meta))
    dataset = load(tmp_path, split="train")
    torch.testing.assert_close(dataset.cameras.c2w, cameras.c2w[[2, 5]])


def test_llff_recentres_rescales_and_reads_images_k(tmp_path, rgba):
    eyes = torch.tensor([[x, y, 5.0] for x, y in [(-1, 0), (0, 0.5), (1, 0), (0.5, -0.5), (-0.5, 0.3)]])
    c2w = look_at(eyes, torch.tensor([0.0, 0.0, 0.0]), up=(0.0, 1.0, 0.0))
    c2w[:, :3, 3] += torch.tensor([3.0, -2.0, 1.0])
    cameras = Camera(c2w, 10.0, 10.0, WIDTH / 2, HEIGHT / 2, WIDTH, HEIGHT)
    bounds = np.array([[2.0, 10.0]] * 5)
    write_llff(tmp_path, rgba[:5, ..., :3], cameras, bounds)
    dataset = load(tmp_path, split="all")
    scale = 1 / (2.0 * 0.75)
    torch.testing.assert_close(mean_pose(dataset.cameras.c2w), torch.eye(4), atol=1e-5, rtol=0)
    assert dataset.near == pytest.approx(0.9 * 2.0 * scale) and dataset.far == pytest.approx(10.0 * scale)
    assert dataset.aabb is None
    # Relative geometry is kept: distances between cameras scale by `scale`, directions rotate rigidly.
    distances = torch.cdist(dataset.cameras.c2w[:, :3, 3], dataset.cameras.c2w[:, :3, 3])
    torch.testing.assert_close(distances, torch.cdist(c2w[:, :3, 3], c2w[:, :3, 3]) * scale, atol=1e-5, rtol=0)

    small = tmp_path / "images_2"
    small.mkdir()
    for k, image in enumerate(rgba[:5, ::2, ::2, :3]):
        Image.fromarray(np.ascontiguousarray(image)).save(small / f"image_{k:04d}.png")
    halved = load(tmp_path, split="all", downscale=2)
    np.testing.assert_allclose(halved.images.numpy(), rgba[:5, ::2, ::2, :3] / 255.0, atol=1e-6)
    assert halved.cameras.fx[0].item() == pytest.approx(5.0)


def test_sample_rays_match_pixels(tmp_path, cameras, rgba):
    write_blender(tmp_path, "train", rgba, cameras)
    dataset = load(tmp_path)
    batch = dataset.sample_rays(64, torch.Generator().manual_seed(1))
    again = dataset.sample_rays(64, torch.Generator().manual_seed(1))
    torch.testing.assert_close(batch["rgb"], again["rgb"])
    origins, directions = dataset.cameras.rays()
    all_rgb, all_alpha = dataset.images.reshape(-1, 3), dataset.alphas.reshape(-1)
    for k in range(64):  # find each ray's pixel by its direction and check its colour
        match = ((directions.reshape(-1, 3) - batch["directions"][k]).norm(dim=-1) < 1e-6).nonzero()
        assert len(match) == 1
        torch.testing.assert_close(all_rgb[match[0, 0]], batch["rgb"][k])
        torch.testing.assert_close(all_alpha[match[0, 0]], batch["alpha"][k])
        torch.testing.assert_close(origins.reshape(-1, 3)[match[0, 0]], batch["origins"][k])
    assert batch["origins"].shape == (64, 3) and batch["alpha"].shape == (64,)


def test_dataset_from_tensors_and_to(cameras):
    images = torch.rand(N_VIEWS, HEIGHT, WIDTH, 3)
    dataset = Dataset(images, cameras)
    moved = dataset.to("cpu")
    assert moved.alphas is None and torch.equal(moved.images, images) and len(moved) == N_VIEWS
    assert moved.sample_rays(5)["alpha"] is None
    with pytest.raises(ValueError, match="do not match"):
        Dataset(images[:2], cameras)
