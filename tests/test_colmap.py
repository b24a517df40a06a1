"""COLMAP models and DTU scans as ``--data``: a model written by pycolmap (the reference) is read
by fastnerf's own parser, in .bin and .txt; poses, intrinsics and lenses checked by projecting
points with pycolmap and tracing fastnerf's rays back through them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastnerf.cameras import look_at
from fastnerf.data import DatasetError, detect_format, load, load_scenes
from fastnerf.data.writers import write_ngp

pycolmap = pytest.importorskip("pycolmap")

WIDTH, HEIGHT = 12, 9
N_IMAGES = 10
# Two cameras of one size: a distorted phone lens and a plain pinhole (the batch shares OPENCV).
CAMERAS = [("OPENCV", [11.0, 12.0, 6.2, 4.4, -0.12, 0.02, 0.003, -0.002]), ("PINHOLE", [10.0, 10.5, 6.0, 4.5])]
RNG = np.random.default_rng(0)
POINTS = np.concatenate([RNG.uniform(-0.5, 0.5, (300, 3)), [[40.0, 0, 0], [0, -35.0, 0]]])  # two strays


def opengl_poses() -> np.ndarray:  # [N,4,4]
    angles = np.linspace(0, 2 * np.pi, N_IMAGES, endpoint=False)
    eyes = np.stack([3 * np.cos(angles), 3 * np.sin(angles), 0.8 + 0.1 * np.sin(3 * angles)], -1)
    return look_at(torch.tensor(eyes), torch.zeros(3)).double().numpy()


def image_name(k: int) -> str:
    return f"photo_{(7 * k) % N_IMAGES:02d}.png"  # registration order is not name order


def reconstruction(n_images: int = N_IMAGES):
    model = pycolmap.Reconstruction()
    for camera_id, (name, params) in enumerate(CAMERAS, 1):
        model.add_camera_with_trivial_rig(pycolmap.Camera(model=name, width=WIDTH, height=HEIGHT, params=params,
                                                          camera_id=camera_id))
    for k, c2w in enumerate(opengl_poses()[:n_images]):
        w2c = np.linalg.inv(c2w @ np.diag([1.0, -1.0, -1.0, 1.0]))  # OpenCV world-to-camera
        image = pycolmap.Image(name=image_name(k), camera_id=1 + k % 2, image_id=k + 1)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3]))
    for point in POINTS:
        model.add_point3D(point, pycolmap.Track(), np.array([200, 100, 50], dtype=np.uint8))
    return model


def write_capture(folder, extension=".bin", n_images=N_IMAGES, model_folder="sparse/0"):
    model = reconstruction(n_images)
    (folder / model_folder).mkdir(parents=True, exist_ok=True)
    (model.write_binary if extension == ".bin" else model.write_text)(str(folder / model_folder))
    for k in range(N_IMAGES):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 20 * k, np.uint8)).save(folder / "images" / image_name(k))
    return model


def test_reader_agrees_with_pycolmap_on_poses_intrinsics_and_lenses(tmp_path):
    for extension in (".bin", ".txt"):
        folder = tmp_path / extension[1:]
        model = write_capture(folder, extension)
        assert detect_format(folder) == ("colmap", folder)
        data = load(folder, "all")
        assert data.format == "colmap" and len(data) == N_IMAGES
        names = sorted(image_name(k) for k in range(N_IMAGES))
        assert [h.path.name for h in data._stack.headers] == names
        cameras = data.cameras
        assert cameras.distortion_model == "OPENCV"
        by_name = {image.name: image for image in model.images.values()}
        poses = opengl_poses()
        for index, name in enumerate(names):
            k = next(k for k in range(N_IMAGES) if image_name(k) == name)
            np.testing.assert_allclose(cameras.c2w[index].double().numpy(), poses[k], atol=1e-5)
            model_name, params = CAMERAS[k % 2]
            fx, fy = (params[0], params[1])
            assert cameras.fx[index].item() == pytest.approx(fx) and cameras.fy[index].item() == pytest.approx(fy)
            assert cameras.cx[index].item() == pytest.approx(params[2]) and cameras.cy[index].item() == pytest.approx(params[3])
            expected_lens = params[4:] if model_name == "OPENCV" else [0.0] * 4
            np.testing.assert_allclose(cameras.distortion[index].numpy(), expected_lens, atol=1e-7)
            # Every sparse point pycolmap projects into the image lies on fastnerf's ray through that pixel.
            image = by_name[name]
            camera = model.cameras[image.camera_id]
            local = np.stack([image.cam_from_world() * p for p in POINTS[:20]])
            pixels = camera.img_from_cam(local)
            origins, directions = cameras.rays_through(torch.full((20,), index), torch.tensor(pixels[:, 0]),
                                                       torch.tensor(pixels[:, 1]))
            to_point = torch.tensor(POINTS[:20], dtype=torch.float32) - origins
            along = (to_point * directions).sum(-1, keepdim=True)
            assert (along > 0).all()
            assert (to_point - along * directions).norm(dim=-1).max() < 1e-4
        # The box: the points' 1st..99th percentiles, so the two strays do not stretch it.
        np.testing.assert_allclose(data.aabb.numpy(), np.concatenate(np.percentile(POINTS, [1, 99], axis=0)), rtol=1e-5)
        assert data.aabb[3:].max() < 10


def test_splits_hold_out_every_eighth_image_by_name_like_transforms_json(tmp_path):
    write_capture(tmp_path / "capture")
    names = sorted(image_name(k) for k in range(N_IMAGES))
    test = load(tmp_path / "capture", "test")
    train = load(tmp_path / "capture", "train")
    assert [h.path.name for h in test._stack.headers] == [names[0], names[8]]
    assert len(train) == N_IMAGES - 2
    # The same photos as transforms.json, frames in any order, hold out the same names.
    order = [3, 0, 9, 5, 1, 8, 2, 7, 4, 6]
    cameras = load(tmp_path / "capture", "all").cameras.pinhole()
    json_path = write_ngp(tmp_path / "ngp", np.zeros((N_IMAGES, HEIGHT, WIDTH, 3), np.uint8), cameras[order])
    meta = json.loads(json_path.read_text())
    for frame, k in zip(meta["frames"], order):
        frame["file_path"] = f"images/{names[k]}"
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(tmp_path / "ngp" / "images" / names[k])
    json_path.write_text(json.dumps(meta))
    ngp_test = load(tmp_path / "ngp", "test")
    assert sorted(h.path.name for h in ngp_test._stack.headers) == [names[0], names[8]]


def test_the_largest_model_is_read(tmp_path):
    write_capture(tmp_path, n_images=4, model_folder="sparse/0")
    write_capture(tmp_path, n_images=9, model_folder="sparse/1")
    assert len(load(tmp_path, "all")) == 9


def test_malformed_models_are_clear_errors(tmp_path):
    write_capture(tmp_path)
    cameras_bin = tmp_path / "sparse" / "0" / "cameras.bin"
    intact = cameras_bin.read_bytes()
    cameras_bin.write_bytes(intact[:-5])
    with pytest.raises(DatasetError, match=r"cameras\.bin: truncated"):
        load(tmp_path, "all")
    cameras_bin.write_bytes(intact)
    (tmp_path / "images" / image_name(3)).unlink()
    with pytest.raises(DatasetError, match=rf"images\.bin, image '{image_name(3)}': not found in .*images"):
        load(tmp_path, "all")
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(load(tmp_path, "all", skip_missing=True)) == N_IMAGES - 1
    images_bin = tmp_path / "sparse" / "0" / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"images\.bin: truncated"):
        load(tmp_path, "all")
    for name in ("cameras.bin", "images.bin", "points3D.bin", "rigs.bin", "frames.bin"):
        (tmp_path / "sparse" / "0" / name).unlink(missing_ok=True)
    with pytest.raises(DatasetError, match="no dataset found.*COLMAP model"):
        load(tmp_path, "all")


def test_unsupported_lens_and_bad_text_are_named(tmp_path):
    write_capture(tmp_path, ".txt")
    cameras_txt = tmp_path / "sparse" / "0" / "cameras.txt"
    text = cameras_txt.read_text()
    cameras_txt.write_text(text.replace("PINHOLE 12 9 10 10.5 6 4.5", "FOV 12 9 10 10.5 6 4.5 0.1"))
    with pytest.raises(DatasetError, match=r"cameras\.txt, camera 2: fastnerf does not apply the FOV lens"):
        load(tmp_path, "all")
    cameras_txt.write_text(text.replace("PINHOLE 12 9 10 10.5 6 4.5", "PINHOLE 12 9 10 ten 6 4.5"))
    with pytest.raises(DatasetError, match=r"cameras\.txt, line \d+: expected numeric parameters"):
        load(tmp_path, "all")


def test_a_dtu_scan_is_a_posed_single_scene(tmp_path):
    from test_scenes import make_dtu

    scan = make_dtu(tmp_path, "neus", scans=("scan7",)) / "scan7"
    assert detect_format(scan) == ("dtu", scan)
    every = load(scan, "all")
    scene = load_scenes(scan, "test")[0]
    assert every.format == "dtu" and len(every) == 4 and not every.cameras.has_distortion
    torch.testing.assert_close(every.cameras.c2w, scene.cameras.c2w)
    torch.testing.assert_close(every.cameras.fx, scene.cameras.fx)
    torch.testing.assert_close(every.images, scene.images)
    assert every.aabb.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0] and (every.near, every.far) == (0.1, 5.0)
    test, train = load(scan, "test"), load(scan, "train")
    torch.testing.assert_close(test.cameras.c2w, scene.cameras.c2w[:1])
    torch.testing.assert_close(train.images, scene.images[1:])


def test_a_distorted_capture_trains_and_renders_through_the_cli(tmp_path):
    import warnings

    from fastnerf.cli import main

    write_capture(tmp_path / "capture")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*distortion.*")  # applied, not warned about
        assert main(["train", "teacher", "--data", str(tmp_path / "capture"), "--out", str(tmp_path / "run"),
                     "--steps", "2", "--quiet", "--eval-every", "0"]) == 0
    assert main(["render", str(tmp_path / "run"), "--path", "test", "--out", str(tmp_path / "frames"),
                 "--threads", "1"]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 2  # the two held-out photos, through their lenses


def test_an_unbounded_teacher_on_a_colmap_model_reaches_every_sparse_point(tmp_path):
    """COLMAP models (and process-images' transforms.json) carry no far plane: an unbounded
    teacher's rays end 100 diagonals of the points' robust box past its farthest corner, past
    every sparse point, the strays 40 units out included (the box is 1 wide). Where exactly does
    not matter much: past the box steps are evenly spaced in disparity, so a plane 100 times
    farther costs a few intervals more, where cone steps alone would cost ln(100) / cone_angle."""
    from fastnerf.fields.scene_space import intervals_per_ray
    from fastnerf.train.tasks.teacher import teacher_config_for

    write_capture(tmp_path)
    data = load(tmp_path, "train")
    assert data.far is None and data.near is None
    config = teacher_config_for(data, scene="unbounded")
    farthest = torch.cdist(data.cameras.c2w[:, :3, 3].double(), torch.tensor(POINTS)).max().item()
    assert config["far"] > farthest > 35
    step = float(np.linalg.norm(np.subtract(config["aabb"][3:], config["aabb"][:3]))) / config["steps_per_diagonal"]
    scene = (config["near"], step, config["cone_angle"])

    def cost(far, disparity):
        return intervals_per_ray(scene[0], far, *scene[1:], disparity)

    farther = cost(100 * config["far"], config["disparity_step"]) - cost(config["far"], config["disparity_step"])
    assert 0 < farther < 0.02 * (cost(100 * config["far"], 0.0) - cost(config["far"], 0.0))
