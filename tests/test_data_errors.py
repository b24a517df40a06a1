"""Every malformed dataset raises DatasetError naming the file (and frame and field)."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fastnerf.cameras import orbit_path
from fastnerf.data import DatasetError, load
from fastnerf.data.writers import write_blender, write_llff, write_ngp
from fastnerf.errors import UserError

N_VIEWS = 3


@pytest.fixture
def blender(tmp_path):
    """A valid Blender dataset; returns (folder, json path, parsed JSON)."""
    cameras = orbit_path(N_VIEWS, 4.0, 30.0, 6, 4, 0.8)
    json_path = write_blender(tmp_path, "train", np.full((N_VIEWS, 4, 6, 4), 200, np.uint8), cameras)
    return tmp_path, json_path, json.loads(json_path.read_text())


def rewrite(json_path, meta):
    json_path.write_text(json.dumps(meta))


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, UserError) and issubclass(DatasetError, ValueError)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder") as info:
        load(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_folder_without_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no dataset found"):
        load(tmp_path)


def test_missing_split_lists_present_ones(blender):
    folder, _, _ = blender
    with pytest.raises(DatasetError, match=r"transforms_test\.json: not found .*splits: train"):
        load(folder, split="test")


@pytest.mark.parametrize("text, match", [
    ('{"camera_angle_x": 0.7, "frames": [', "truncated"),
    ('{"camera_angle_x": 0.7,, }', "malformed JSON at line 1"),
    ("", "empty"),
    ("[1, 2]", "JSON object"),
])
def test_malformed_json(blender, text, match):
    folder, json_path, _ = blender
    json_path.write_text(text)
    with pytest.raises(DatasetError, match=match) as info:
        load(folder)
    assert "transforms_train.json" in str(info.value)


def test_no_focal_length(blender):
    folder, json_path, meta = blender
    for key in ("camera_angle_x", "fl_x", "fl_y"):
        del meta[key]
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=r"transforms_train\.json, frame 0: no focal length"):
        load(folder)


@pytest.mark.parametrize("value, match", [("wide", "expected a number"), (-0.5, "positive"), (4.0, "below pi")])
def test_bad_camera_angle(blender, value, match):
    folder, json_path, meta = blender
    del meta["fl_x"], meta["fl_y"]
    meta["camera_angle_x"] = value
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=f"field 'camera_angle_x': .*{match}"):
        load(folder)


def test_missing_image_raises_naming_frame_and_field(blender):
    folder, _, _ = blender
    (folder / "train" / "r_1.png").unlink()
    with pytest.raises(DatasetError, match=r"frame 1, field 'file_path': image './train/r_1' not found"):
        load(folder)


@pytest.mark.parametrize("data_format", ["blender", "ngp"])
def test_missing_image_hint_names_what_the_user_can_type(tmp_path, data_format):
    # The real Instant-NGP fox capture lacks some images: the hint must name the CLI flag, not
    # only a Python keyword no CLI user can pass.
    cameras = orbit_path(N_VIEWS, 4.0, 30.0, 6, 4, 0.8)
    images = np.full((N_VIEWS, 4, 6, 3), 200, np.uint8)
    if data_format == "ngp":
        write_ngp(tmp_path, images, cameras)
        (tmp_path / "images" / "frame_00001.png").unlink()
    else:
        write_blender(tmp_path, "train", images, cameras)
        (tmp_path / "train" / "r_1.png").unlink()
    with pytest.raises(DatasetError, match="frame 1") as info:
        load(tmp_path, split="all" if data_format == "ngp" else "train")
    assert "`--skip-missing` on the command line" in str(info.value)
    assert "skip_missing=True" in str(info.value)


def test_llff_count_mismatch_says_skip_missing_cannot_help(llff):
    folder, _ = llff
    (folder / "images" / "image_0002.png").unlink()
    with pytest.raises(DatasetError, match=r"--skip-missing / skip_missing=True cannot apply"):
        load(folder, skip_missing=True)


def test_missing_image_skipped_with_warning_when_asked(blender):
    folder, _, _ = blender
    (folder / "train" / "r_1.png").unlink()
    with pytest.warns(UserWarning, match=r"skipped 1 frame.*frame 1"):
        dataset = load(folder, skip_missing=True)
    assert len(dataset) == N_VIEWS - 1


def test_all_images_missing_even_when_skipping(blender):
    folder, _, _ = blender
    for k in range(N_VIEWS):
        (folder / "train" / f"r_{k}.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match="no frames left"):
            load(folder, skip_missing=True)


@pytest.mark.parametrize("matrix, match", [
    (np.eye(3).tolist(), "expected a 4x4 matrix, got shape 3x3"),
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]], "non-finite"),
    ((np.eye(4) * 2).tolist(), "not a rigid"),
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], "singular"),
    ("identity", "4x4 matrix"),
    ([[1, 2], [3]], "4x4 matrix"),
])
def test_bad_transform_matrix(blender, matrix, match):
    folder, json_path, meta = blender
    meta["frames"][2]["transform_matrix"] = matrix
    json_path.write_text(json.dumps(meta).replace("NaN", "NaN"))
    with pytest.raises(DatasetError, match=f"frame 2, field 'transform_matrix': .*{match}"):
        load(folder)


def test_three_by_four_matrix_is_completed(blender):
    folder, json_path, meta = blender
    meta["frames"][0]["transform_matrix"] = meta["frames"][0]["transform_matrix"][:3]
    rewrite(json_path, meta)
    assert len(load(folder)) == N_VIEWS


@pytest.mark.parametrize("frames, match", [
    (None, "field 'frames': missing"),
    ([], "field 'frames': the list is empty"),
    ({"a": 1}, "field 'frames': expected a list"),
    ([42], "frame 0: expected an object"),
    ([{"transform_matrix": np.eye(4).tolist()}], "frame 0, field 'file_path': missing"),
    ([{"file_path": "./train/r_0"}], "frame 0, field 'transform_matrix': missing"),
])
def test_bad_frame_list(blender, frames, match):
    folder, json_path, meta = blender
    if frames is None:
        del meta["frames"]
    else:
        meta["frames"] = frames
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=match):
        load(folder)


def test_images_of_different_sizes(blender):
    folder, _, _ = blender
    Image.new("RGBA", (8, 4)).save(folder / "train" / "r_2.png")
    with pytest.raises(DatasetError, match=r"frame 2, field 'file_path': image r_2.png is 8x4 but r_0.png is 6x4"):
        load(folder)


def test_size_disagrees_with_w_h(blender):
    folder, json_path, meta = blender
    meta["w"] = 7
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=r"field 'w': says 7 but image r_0.png is 6x4"):
        load(folder)


def test_unreadable_image(blender):
    folder, _, _ = blender
    (folder / "train" / "r_0.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"frame 0, field 'file_path': .*r_0.png is not a readable image"):
        load(folder)


def test_truncated_image_fails_on_decode_with_file_name(blender):
    folder, _, _ = blender
    path = folder / "train" / "r_1.png"
    path.write_bytes(path.read_bytes()[:45])  # PNG signature and header survive, pixel data does not
    with pytest.raises(DatasetError, match="r_1.png"):
        load(folder).images


def test_bad_explicit_aabb(blender):
    folder, json_path, meta = blender
    meta["aabb"] = [1, 1, 1, -1, -1, -1]
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match="field 'aabb'"):
        load(folder)


@pytest.mark.parametrize("kwargs, match", [
    (dict(downscale=0), "downscale"),
    (dict(downscale=1.5), "downscale"),
    (dict(downscale=7), "leaves no pixels"),
    (dict(background=(1, 2)), "background"),
    (dict(split="dev"), "unknown split"),
])
def test_bad_load_arguments(blender, kwargs, match):
    folder, _, _ = blender
    with pytest.raises(DatasetError, match=match):
        load(folder, **kwargs)


def test_ngp_lens_distortion_is_read_without_a_warning_and_bad_lenses_are_refused(tmp_path):
    cameras = orbit_path(2, 4.0, 30.0, 6, 4, 0.8)
    json_path = write_ngp(tmp_path, np.zeros((2, 4, 6, 3), np.uint8), cameras)
    meta = json.loads(json_path.read_text())
    meta["k1"] = 0.1  # Instant-NGP's fox: no camera_model, so OPENCV
    rewrite(json_path, meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = load(tmp_path, split="all")
    assert dataset.cameras.distortion_model == "OPENCV"
    torch.testing.assert_close(dataset.cameras.distortion, torch.tensor([[0.1, 0.0, 0.0, 0.0]] * 2))
    meta["frames"][1].update(camera_model="OPENCV_FISHEYE", k1=0.0, k3=0.2)  # per frame: one lens a frame
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=r"transforms\.json: .*fisheye and a perspective lens"):
        load(tmp_path, split="all")
    meta["camera_model"] = "OPENCV_FISHEYE"
    rewrite(json_path, meta)
    fisheye = load(tmp_path, split="all").cameras
    assert fisheye.distortion_model == "OPENCV_FISHEYE"
    torch.testing.assert_close(fisheye.distortion, torch.tensor([[0.1, 0.0, 0.0, 0.0], [0.0, 0.0, 0.2, 0.0]]))
    meta["camera_model"] = "FOV"
    del meta["frames"][1]["camera_model"]
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=r"transforms\.json, field 'camera_model': 'FOV' is not supported"):
        load(tmp_path, split="all")
    meta["camera_model"] = "RADIAL"
    rewrite(json_path, meta)
    with pytest.raises(DatasetError, match=r"frame 1, field 'k3': camera_model RADIAL has no 'k3'"):
        load(tmp_path, split="all")


@pytest.fixture
def llff(tmp_path):
    cameras = orbit_path(3, 4.0, 30.0, 6, 4, 0.8)
    npy_path = write_llff(tmp_path, np.zeros((3, 4, 6, 3), np.uint8), cameras, [[1.0, 5.0]] * 3)
    return tmp_path, npy_path


@pytest.mark.parametrize("array, match", [
    (np.zeros((3, 15)), r"expected shape \[N,17\]"),
    (np.zeros((0, 17)), "has no frames"),
])
def test_llff_bad_array_shape(llff, array, match):
    folder, npy_path = llff
    np.save(npy_path, array)
    with pytest.raises(DatasetError, match=f"poses_bounds.npy: {match}"):
        load(folder)


@pytest.mark.parametrize("column, value, match", [
    (3, float("inf"), "frame 1: non-finite"),
    (15, 6.0, r"frame 1: bounds must satisfy 0 < near < far"),
    (14, 0.0, "frame 1: height, width and focal"),
    (0, 3.0, "frame 1: not a rigid"),
])
def test_llff_bad_values(llff, column, value, match):
    folder, npy_path = llff
    array = np.load(npy_path)
    array[1, column] = value
    np.save(npy_path, array)
    with pytest.raises(DatasetError, match=match):
        load(folder)


def test_llff_image_count_mismatch_and_garbage_file(llff):
    folder, npy_path = llff
    (folder / "images" / "image_0002.png").unlink()
    with pytest.raises(DatasetError, match="has 3 poses but .*images holds 2 images"):
        load(folder)
    npy_path.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="poses_bounds.npy: not a readable .npy array"):
        load(folder)
