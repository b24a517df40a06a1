"""load_scenes: tiny sets in the Blender-folder, SRN and DTU layouts, cameras checked against
projections computed from each format's own definition (a wrong OpenCV flip fails)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastnerf.cameras import Camera, look_at
from fastnerf.data import DatasetError, load_scenes
from fastnerf.data.scene_loading import parse_source_views
from fastnerf.data.writers import write_blender

WIDTH, HEIGHT = 10, 8
EYES = [(2.0, 0.3, 0.5), (0.2, -2.2, 0.8), (-1.8, 0.9, -0.4), (0.5, 1.9, 1.2)]
POINT = np.array([0.15, -0.1, 0.2])  # a world point every camera sees


def opencv_cameras():
    """OpenCV camera-to-world matrices (camera looks along +Z, +Y down) at EYES, aimed at the origin."""
    matrices = []
    for eye in EYES:
        eye = np.array(eye)
        forward = -eye / np.linalg.norm(eye)  # +Z of the camera
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
        matrices.append(c2w)
    return matrices


def project_opencv(c2w, fx, fy, cx, cy, point):
    """Pixel coordinates (OpenCV: pixel centres at integers) and depth of a world point."""
    camera = np.linalg.inv(c2w) @ np.append(point, 1.0)
    return fx * camera[0] / camera[2] + cx, fy * camera[1] / camera[2] + cy, camera[2]


def assert_ray_hits(cameras: Camera, index: int, u: float, v: float, point):
    """Our ray through OpenCV pixel (u, v) (our coordinates u + 0.5, v + 0.5) passes through point, in front."""
    origin, direction = cameras.rays_through(torch.tensor([index]), torch.tensor([u + 0.5]), torch.tensor([v + 0.5]))
    to_point = torch.tensor(point, dtype=torch.float32) - origin[0]
    along = float(to_point @ direction[0])
    miss = float((to_point - along * direction[0]).norm())
    assert along > 0, f"view {index}: the point is behind the camera"
    assert miss < 1e-4, f"view {index}: the ray misses the point by {miss}"


def save_rgb(path, seed, white_border=True):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 200, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    if white_border:
        pixels[0] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


# ---- SRN / ShapeNet -----------------------------------------------------------------------------

FOCAL, SRN_C = 9.0, (5.0, 4.0)


def make_srn(root, category="cars", split="train", instances=("a1", "b2"), size_line=f"{HEIGHT} {WIDTH}"):
    for name in instances:
        folder = root / f"{category}_{split}" / name
        for k, c2w in enumerate(opencv_cameras()):
            save_rgb(folder / "rgb" / f"{k:06d}.png", k)
            (folder / "pose").mkdir(parents=True, exist_ok=True)
            (folder / "pose" / f"{k:06d}.txt").write_text(" ".join(f"{v:.10f}" for v in c2w.reshape(-1)))
        (folder / "intrinsics.txt").write_text(f"{FOCAL} {SRN_C[0]} {SRN_C[1]} 0.\n0. 0. 0.\n1.\n{size_line}\n")
    return root


def test_srn_cameras_project_like_opencv(tmp_path):
    data = load_scenes(make_srn(tmp_path), "train")
    assert data.format == "srn" and len(data) == 2 and (data.near, data.far) == (0.8, 1.8)
    scene = data[0]
    assert scene.name == "a1" and scene.images.shape == (4, HEIGHT, WIDTH, 3)
    for index, c2w in enumerate(opencv_cameras()):
        u, v, depth = project_opencv(c2w, FOCAL, FOCAL, *SRN_C, POINT)
        assert depth > 0
        assert_ray_hits(scene.cameras, index, u, v, POINT)
    # the white top row is background, the rest is object
    assert scene.masks[:, 0].sum() == 0 and scene.masks[:, 1:].min() == 1


def test_srn_wrong_flip_would_fail(tmp_path):
    """The check above is not vacuous: the camera without the OpenCV -> OpenGL flip misses."""
    scene = load_scenes(make_srn(tmp_path), "train")[0]
    unflipped = Camera(scene.cameras.c2w @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])), scene.cameras.fx,
                       scene.cameras.fy, scene.cameras.cx, scene.cameras.cy, WIDTH, HEIGHT)
    u, v, _ = project_opencv(opencv_cameras()[0], FOCAL, FOCAL, *SRN_C, POINT)
    with pytest.raises(AssertionError):
        assert_ray_hits(unflipped, 0, u, v, POINT)


def test_srn_paths_prefix_split_folder_and_scaled_intrinsics(tmp_path):
    root = make_srn(tmp_path, "chairs", "test", size_line=f"{2 * HEIGHT} {2 * WIDTH}")
    for path in (root, root / "chairs", root / "chairs_test"):
        data = load_scenes(path, "test")
        assert data.format == "srn" and len(data) == 2 and (data.near, data.far) == (1.25, 2.75)
    # intrinsics.txt declares a 2x larger image: f, cx, cy are halved for these images
    torch.testing.assert_close(data[0].cameras.fx, torch.full((4,), FOCAL / 2))
    torch.testing.assert_close(data[0].cameras.cx, torch.full((4,), (SRN_C[0] + 0.5) / 2))


def test_srn_downscale(tmp_path):
    scene = load_scenes(make_srn(tmp_path), "train", downscale=2)[0]
    assert scene.images.shape == (4, HEIGHT // 2, WIDTH // 2, 3)
    torch.testing.assert_close(scene.cameras.fx, torch.full((4,), FOCAL / 2))


def test_srn_errors_name_file_and_field(tmp_path):
    root = make_srn(tmp_path)
    intrinsics = root / "cars_train" / "a1" / "intrinsics.txt"
    intrinsics.write_text("nine 5 4 0.\n1.\n8 10\n")
    with pytest.raises(DatasetError, match=r"intrinsics.txt, line 1"):
        load_scenes(root, "train")
    intrinsics.write_text(f"{FOCAL} 5 4 0.\n0. 0. 0.\n1.\n{HEIGHT} {WIDTH}\n")
    (root / "cars_train" / "a1" / "pose" / "000002.txt").write_text("1 0 0")
    with pytest.raises(DatasetError, match=r"000002.txt: expected 16 numbers"):
        load_scenes(root, "train")
    (root / "cars_train" / "a1" / "pose" / "000002.txt").unlink()
    with pytest.raises(DatasetError, match=r"4 images in rgb/ but 3 poses"):
        load_scenes(root, "train")


# ---- DTU ----------------------------------------------------------------------------------------

K = np.array([[11.0, 0.0, 4.5], [0.0, 12.0, 3.5], [0.0, 0.0, 1.0]])
SCALE = np.array([[3.0, 0, 0, 10.0], [0, 3.0, 0, -5.0], [0, 0, 3.0, 2.0], [0, 0, 0, 1]])  # normalised -> calibrated world


def make_dtu(root, layout="pixelnerf", scans=("scan1", "scan2"), image_folder="image"):
    for name in scans:
        folder = root / name
        stored = {}
        for k, c2w_normalised in enumerate(opencv_cameras()):
            c2w = SCALE @ c2w_normalised @ np.diag([1 / 3.0, 1 / 3.0, 1 / 3.0, 1.0])  # same camera, calibrated world
            w2c = np.linalg.inv(c2w)
            world_mat = np.eye(4)
            world_mat[:3] = 7.0 * K @ w2c[:3]  # P up to scale, as calibrations store it
            stored[f"world_mat_{k}"] = world_mat if layout == "neus" else world_mat[:3]
            stored[f"scale_mat_{k}"] = SCALE
            save_rgb(folder / image_folder / f"{k:06d}.png", k)
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            mask[2:5, 3:7] = 255
            (folder / "mask").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(folder / "mask" / f"{k:03d}.png")
        np.savez(folder / ("cameras_sphere.npz" if layout == "neus" else "cameras.npz"), **stored)
    return root


@pytest.mark.parametrize("layout,image_folder", [("pixelnerf", "image"), ("neus", "image"), ("neus", "images")])
def test_dtu_cameras_project_like_the_projection_matrix(tmp_path, layout, image_folder):
    data = load_scenes(make_dtu(tmp_path, layout, image_folder=image_folder), "test")
    assert data.format == "dtu" and len(data) == 2 and data[0].name == "scan1"
    scene = data[1]
    torch.testing.assert_close(scene.cameras.fx, torch.full((4,), 11.0))
    torch.testing.assert_close(scene.cameras.cy, torch.full((4,), 4.0))
    for index, c2w in enumerate(opencv_cameras()):
        # the projection in the normalised world, from P @ scale_mat itself
        pixel = (7.0 * K @ np.linalg.inv(SCALE @ c2w @ np.diag([1 / 3.0, 1 / 3.0, 1 / 3.0, 1.0]))[:3]) @ SCALE @ np.append(POINT, 1.0)
        assert_ray_hits(scene.cameras, index, pixel[0] / pixel[2], pixel[1] / pixel[2], POINT)
    assert scene.masks.shape == (4, HEIGHT, WIDTH) and scene.masks.sum() == 4 * 12


def test_dtu_pixelnerf_split_lists(tmp_path):
    make_dtu(tmp_path / "DTU", scans=("scan1", "scan2", "scan3"))
    (tmp_path / "DTU" / "new_test.lst").write_text("scan3\nscan1\n")
    data = load_scenes(tmp_path, "test")
    assert [s.name for s in data.scenes] == ["scan3", "scan1"]


def test_dtu_missing_field_is_named(tmp_path):
    root = make_dtu(tmp_path, scans=("scan1",))
    save_rgb(root / "scan1" / "image" / "000009.png", 9)
    with pytest.raises(DatasetError, match=r"cameras.npz, field 'world_mat_4'"):
        load_scenes(root, "test")


# ---- a folder of Blender scenes -----------------------------------------------------------------


def make_blender_folder(root, n_scenes=2):
    for s in range(n_scenes):
        eyes = torch.tensor(EYES[: 3], dtype=torch.float64) * (1 + s)
        for split, count in (("train", 3), ("test", 2)):
            cams = Camera.from_fov(look_at(eyes[:count] if split == "train" else -eyes[:count], (0.0, 0.0, 0.0)),
                                   WIDTH, HEIGHT, math.radians(40))
            rgba = torch.rand(count, HEIGHT, WIDTH, 4, generator=torch.Generator().manual_seed(s))
            rgba[..., 3] = (rgba[..., 3] > 0.5).float()
            write_blender(root / f"scene_{s:04d}", split, rgba, cams, aabb=(-1, -1, -1, 1, 1, 1), near=1.0, far=5.0)
    return root


def test_blender_folder_sources_and_targets(tmp_path):
    root = make_blender_folder(tmp_path)
    train = load_scenes(root, "train")
    assert train.format == "blender" and len(train) == 2 and (train.near, train.far) == (1.0, 5.0)
    assert len(train[0]) == 3 and train[0].target_pool == [0, 1, 2]
    test = load_scenes(root, "test")
    scene = test[1]
    assert len(scene) == 5 and scene.source_pool == [0, 1, 2] and scene.target_pool == [3, 4]
    assert scene.choose_views(2) == ([0, 1], [3, 4])
    assert scene.choose_views(source_views=[4, 0]) == ([4, 0], [3])
    torch.testing.assert_close(scene.cameras.c2w[0, :3, 3], torch.tensor(EYES[0]) * 2)
    assert scene.masks is not None and set(scene.masks.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(DatasetError, match="out of range"):
        scene.choose_views(source_views=[7])
    with pytest.raises(DatasetError, match="offers 3"):
        scene.choose_views(4)


def test_parse_source_views_and_unknown_folder(tmp_path):
    assert parse_source_views("22,25,28") == [22, 25, 28] and parse_source_views(None) is None
    with pytest.raises(DatasetError, match="comma-separated"):
        parse_source_views("a,b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no multi-scene dataset"):
        load_scenes(tmp_path / "empty", "train")


def test_random_scenes_vary_and_fit_their_box():
    from fastnerf.data.procedural.random_scenes import random_scene

    scenes = [random_scene(seed) for seed in range(40)]
    assert len({len(scene.objects) for scene in scenes}) >= 4  # 1 to 5 objects plus the plinth
    assert len({type(o.shape).__name__ for scene in scenes for o in scene.objects}) >= 3
    assert len({scene.key_direction for scene in scenes}) == 40
    for scene in scenes:
        aabb = scene.aabb
        assert min(aabb[:2]) >= -1.1 and max(aabb[3:5]) <= 1.1 and aabb[2] >= -0.5 and aabb[5] <= 1.1, aabb
