"""process-images' inputs: EXIF rotation and focal length before shrinking, unreadable photos,
mixed sizes, too few photos, and video frames chosen for sharpness."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fastnerf.capture import process_images
from fastnerf.capture.exif import focal_length_pixels, with_focal_length
from fastnerf.capture.photos import list_photos, prepare_photos
from fastnerf.capture.sharpness import sharpness
from fastnerf.capture.video import sharpest_frames
from fastnerf.errors import UserError

ROTATE_90_CLOCKWISE = 6  # EXIF orientation: the stored image must turn 90 degrees clockwise to stand upright


def _marked(width=120, height=80) -> Image.Image:
    """Grey with a red block in the stored image's top-left corner."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:10, :10] = (255, 0, 0)
    return Image.fromarray(pixels)


def test_exif_rotation_and_focal_length_are_applied_before_shrinking(tmp_path):
    source = tmp_path / "photos" / "a.jpg"
    source.parent.mkdir()
    _marked().save(source, exif=with_focal_length(28, ROTATE_90_CLOCKWISE), quality=98)
    [photo] = prepare_photos(list_photos(source.parent), tmp_path / "images", max_size=60, progress=False)
    assert (photo.width, photo.height) == (40, 60)  # upright is portrait, then the long side shrunk to 60
    assert photo.focal_px == pytest.approx(28 / 36 * 120 * 0.5)  # 35 mm equivalent over the long side, shrunk
    written = np.asarray(Image.open(tmp_path / "images" / photo.name))
    assert written[2, -3, 0] > 200 and written[2, 2, 0] < 180  # the top-left mark turned to the top-right


def test_a_plain_photo_is_copied_untouched_and_focal_from_the_focal_plane(tmp_path):
    (tmp_path / "photos").mkdir()
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x920A: 4.0, 0xA20E: 250.0, 0xA210: 4})  # 4 mm lens, 250 pixels per mm
    _marked().save(tmp_path / "photos" / "b.jpg", exif=exif)
    assert focal_length_pixels(Image.open(tmp_path / "photos" / "b.jpg")) == pytest.approx(1000.0)
    [photo] = prepare_photos(list_photos(tmp_path / "photos"), tmp_path / "images", max_size=None, progress=False)
    assert (tmp_path / "images" / "b.jpg").read_bytes() == (tmp_path / "photos" / "b.jpg").read_bytes()
    assert photo.focal_px == pytest.approx(1000.0)


def test_unreadable_photos_are_named_together(tmp_path):
    (tmp_path / "photos").mkdir()
    for k in range(3):
        _marked().save(tmp_path / "photos" / f"ok{k}.png")
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = (tmp_path / "photos" / "ok0.png").read_bytes()
    (tmp_path / "photos" / "cut.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "photos" / "notes.txt").write_text("ignored: not a photo")
    with pytest.raises(UserError, match=r"2 file\(s\) are not readable images: broken.jpg .*cut.png"):
        process_images(tmp_path / "photos", tmp_path / "data", progress=False)


def test_photos_of_two_sizes_or_too_few_photos_stop_before_sfm(tmp_path):
    (tmp_path / "mixed").mkdir()
    _marked(120, 80).save(tmp_path / "mixed" / "a.png")
    _marked(80, 120).save(tmp_path / "mixed" / "b.png")
    _marked(120, 80).save(tmp_path / "mixed" / "c.png")
    with pytest.raises(UserError, match="2 sizes after EXIF rotation"):
        process_images(tmp_path / "mixed", tmp_path / "data", progress=False)
    (tmp_path / "two").mkdir()
    for name in ("a", "b"):
        _marked().save(tmp_path / "two" / f"{name}.png")
    with pytest.raises(UserError, match="2 photo\\(s\\); structure from motion needs at least 3"):
        process_images(tmp_path / "two", tmp_path / "data", progress=False)
    with pytest.raises(UserError, match="--max-size"):
        process_images(tmp_path / "two", tmp_path / "data", max_size=-5, progress=False)


def test_blur_lowers_the_sharpness_score():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    blurred = image.filter(ImageFilter.GaussianBlur(2))
    assert sharpness(np.asarray(blurred)) < 0.1 * sharpness(np.asarray(image))
    with pytest.raises(ValueError, match="at least 3x3"):
        sharpness(np.zeros((2, 5)))


def test_video_keeps_the_sharpest_frame_of_each_slice(tmp_path):
    """20 frames at 10 fps, every frame but one per half second blurred: --fps 2 keeps those four."""
    import imageio_ffmpeg

    rng = np.random.default_rng(1)
    scene = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)[:64, :64])
    sharp_frames = {2, 6, 13, 17}
    path = tmp_path / "walk.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (64, 64), fps=10, quality=10, macro_block_size=16)
    writer.send(None)
    for k in range(20):
        frame = scene if k in sharp_frames else scene.filter(ImageFilter.GaussianBlur(2.5))
        writer.send(np.ascontiguousarray(np.asarray(frame)))
    writer.close()
    frames, read, dropped = sharpest_frames(path, fps=2.0, progress=False)
    assert read == 20 and dropped == 0
    assert [index for index, _ in frames] == sorted(sharp_frames)
    with pytest.raises(UserError, match="--fps"):
        sharpest_frames(path, fps=0, progress=False)


def test_an_out_folder_with_files_of_its_own_is_left_alone(tmp_path):
    (tmp_path / "photos").mkdir()
    for k in range(3):
        _marked().save(tmp_path / "photos" / f"p{k}.png")
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(UserError, match="already holds files that process-images did not write"):
        process_images(tmp_path / "photos", tmp_path / "data", progress=False)
    assert (tmp_path / "data" / "images" / "holiday.jpg").read_bytes() == b"precious"
    (tmp_path / "ngp").mkdir()
    (tmp_path / "ngp" / "transforms.json").write_text("{}")
    with pytest.raises(UserError, match="was not written by process-images"):
        process_images(tmp_path / "photos", tmp_path / "ngp", progress=False)
    with pytest.raises(UserError, match="--fps applies to a video"):
        process_images(tmp_path / "photos", tmp_path / "other", fps=2.0, progress=False)
