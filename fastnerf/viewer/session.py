"""One browser tab: its controls, its training-camera frustums and its render thread.

The render thread draws the browser's camera: while the camera moves, at a resolution small enough
to keep up (sized from the last render's time per pixel), and at the full resolution once the
camera has rested for ``SETTLE_SECONDS``, as nerfstudio's viewer does. A render error is shown in
the panel and as a notification; the thread carries on. While a run trains (``train --viewer``)
the frames it asks for are drawn on the training thread between steps (``between_steps.py``).
"""

from __future__ import annotations

import io
import json
import threading
import time
import traceback

import numpy as np

from ..camera_path import save_camera_path
from .poses import c2w_from_viser, fov_y_of, size_for, viser_from_c2w
from .sources import OUTPUT_NAMES, Frame

SETTLE_SECONDS = 0.25  # the camera counts as resting after this long without a move
MOVING_SECONDS = 0.08  # target render time while the camera moves
MIN_MOVING_SIDE = 32
RECORD_FPS = 12.0


class Session:
    def __init__(self, viewer, client):
        self.viewer, self.client = viewer, client
        self.sources = viewer.sources
        self.source = self.sources[0]
        self.wake = threading.Event()
        self.stopped = False
        self.last_move = 0.0
        self.sharp = False  # the last frame shown is full resolution for the current camera and settings
        self.seen_version = -1
        self.seconds_per_pixel = None
        self.frame: Frame | None = None
        self.recording: list[tuple[np.ndarray, float]] = []
        self.last_sample = 0.0
        self.frustums = []
        self._build_gui()
        self._show_source()
        client.camera.on_update(lambda _camera: self.moved())
        self.thread = threading.Thread(target=self._loop, name=f"fastnerf-view-{client.client_id}", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ controls
    def _build_gui(self) -> None:
        gui = self.client.gui
        names = [source.name for source in self.sources]
        self.run_choice = gui.add_dropdown("run", names, initial_value=names[0])
        self.output_choice = gui.add_dropdown("show", self._output_labels(), initial_value="colour")
        self.resolution = gui.add_slider("resolution", min=64, max=2048, step=16,
                                         initial_value=self.viewer.resolution,
                                         hint="longer side of the image once the camera rests")
        self.timing = gui.add_markdown("rendering...")
        self.status = gui.add_markdown("")
        self.note = gui.add_markdown("")
        self.show_cameras = gui.add_checkbox("training cameras", True, hint="draw the training cameras; click one to go there")
        self.save_png = gui.add_button("save PNG", hint="download the frame shown, at full resolution")
        with gui.add_folder("camera path", expand_by_default=False):
            self.record = gui.add_checkbox("record", False, hint=f"sample the camera {RECORD_FPS:g} times a second")
            self.recorded = gui.add_markdown("0 frames")
            self.save_path = gui.add_button("save path", hint="write the recorded path for `fastnerf render --path FILE`")
            self.clear_path = gui.add_button("clear path")
        with gui.add_folder("ground truth", expand_by_default=True):
            self.truth = gui.add_image(np.zeros((8, 8, 3), np.uint8), label="nearest training view", visible=False)
        with gui.add_folder("last frame", expand_by_default=True):
            # The camera of the frame shown, for reproducing it (and for the real-browser test).
            self.frame_info = gui.add_text("camera", "", multiline=True, disabled=True)
        self.run_choice.on_update(lambda _: self._switch_source())
        self.output_choice.on_update(lambda _: self.changed())
        self.resolution.on_update(lambda _: self.changed())
        self.show_cameras.on_update(lambda _: self._show_frustums())
        self.save_png.on_click(lambda _: self._download_png())
        self.save_path.on_click(lambda _: self._save_path())
        self.clear_path.on_click(lambda _: self._clear_path())

    def _output_labels(self) -> list[str]:
        return [OUTPUT_NAMES[key] for key in self.source.outputs]

    def _output_key(self) -> str:
        wanted = {label: key for key, label in OUTPUT_NAMES.items()}.get(self.output_choice.value, "rgb")
        return wanted if wanted in self.source.outputs else "rgb"

    def _switch_source(self) -> None:
        self.source = next(s for s in self.sources if s.name == self.run_choice.value)
        self.output_choice.options = self._output_labels()
        self.seconds_per_pixel = None
        self._show_source()
        self.changed()

    def _show_source(self) -> None:
        source, camera = self.source, self.client.camera
        camera.up_direction = tuple(source.up.tolist())
        if source.fixed_camera is not None:
            c = source.fixed_camera
            camera.fov = source.fixed_fov_y()
            self.note.content = (f"*This kind renders only its training camera, {c['width']}x{c['height']} pixels: "
                                 "the view follows your camera's pose at that field of view and size.*")
        else:
            self.note.content = ""
        self._show_frustums()

    def _show_frustums(self) -> None:
        for handle in self.frustums:
            handle.remove()
        self.frustums = []
        if not self.show_cameras.value:
            return
        source = self.source
        scale = 0.05 * source.radius
        aspect = source.cameras.width / source.cameras.height
        for index in range(len(source.cameras)):
            camera = source.cameras[index]
            wxyz, position = viser_from_c2w(camera.c2w.double().cpu().numpy())
            handle = self.client.scene.add_camera_frustum(f"/training_cameras/{index}", fov=fov_y_of(camera),
                                                          aspect=aspect, scale=scale, wxyz=wxyz, position=position,
                                                          color=(40, 90, 200))
            handle.on_click(lambda event, index=index: self.go_to(index))
            self.frustums.append(handle)

    def go_to(self, index: int) -> None:
        """Move the browser's camera to training camera ``index`` and show its image."""
        source = self.source
        camera = source.cameras[index]
        wxyz, position = viser_from_c2w(camera.c2w.double().cpu().numpy())
        forward = -camera.c2w[:3, 2].double().cpu().numpy()
        distance = float(np.linalg.norm(source.centre.numpy() - position)) or source.radius
        with self.client.atomic():
            self.client.camera.fov = fov_y_of(camera)
            self.client.camera.position = position
            self.client.camera.look_at = position + forward * distance
            self.client.camera.wxyz = wxyz
        self.truth.image = (source.images[index].clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
        self.truth.label = f"training view {index}"
        self.truth.visible = True
        self.moved()

    # ------------------------------------------------------------------ events
    def moved(self) -> None:
        self.last_move = time.monotonic()
        self.sharp = False
        self.wake.set()

    def changed(self) -> None:
        self.sharp = False
        self.wake.set()

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()

    # ------------------------------------------------------------------ render loop
    def _loop(self) -> None:
        while not self.stopped:
            self.wake.wait(timeout=0.05)
            self.wake.clear()
            if self.stopped:
                break
            if self.record.value:
                self._sample_camera()
            if self.source.version != self.seen_version:
                self.seen_version = self.source.version
                self.sharp = False
            camera = self.client.camera
            if self.sharp or camera.image_height <= 0:
                continue
            moving = time.monotonic() - self.last_move < SETTLE_SECONDS
            self._draw(moving)

    def _draw(self, moving: bool) -> None:
        camera, source = self.client.camera, self.source
        try:
            c2w = c2w_from_viser(camera.wxyz, camera.position)
            aspect = camera.aspect
            long_side = min(int(self.resolution.value), max(camera.image_width, camera.image_height))
            seconds = MOVING_SECONDS if moving else source.longest_frame  # what the render may take
            if seconds is not None and self.seconds_per_pixel:
                affordable = int((seconds / self.seconds_per_pixel / min(aspect, 1 / aspect)) ** 0.5)
                long_side = max(MIN_MOVING_SIDE, min(long_side, affordable))
            elif source.longest_frame is not None:  # nothing timed yet: a small first frame, to time it
                long_side = min(long_side, MIN_MOVING_SIDE)
            view = source.camera_for(c2w, camera.fov, *size_for(aspect, long_side))
            frame = source.render(view, self._output_key())
        except Exception as error:  # noqa: BLE001  (a render error is shown; the viewer lives on)
            self._show_error(error)
            self.sharp = True  # do not retry until something changes
            return
        self.seconds_per_pixel = frame.seconds / (view.width * view.height)
        image, depth = frame.image, frame.depth_z
        if source.fixed_camera is not None:
            image, depth = letterbox(image, aspect), None
        self.client.scene.set_background_image(image, format="jpeg" if moving else "png", jpeg_quality=85,
                                               depth=depth)
        self.timing.content = (f"**{frame.seconds * 1e3:.1f} ms** render, {view.width}x{view.height}"
                               + (" (moving)" if moving else ""))
        self.status.content = source.status
        if not moving:
            self.frame = frame
            self.sharp = True
            record = frame_record(frame, source.name)
            record["canvas"] = [int(camera.image_width), int(camera.image_height)]
            self.frame_info.value = json.dumps(record)

    def _show_error(self, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        self.timing.content = f"**render error** ({self.source.name}): {message}"
        self.client.add_notification("render error", message, color="red", auto_close_seconds=8.0)
        if self.viewer.verbose:
            traceback.print_exc()

    # ------------------------------------------------------------------ saving
    def _download_png(self) -> None:
        if self.frame is None:
            self.client.add_notification("nothing to save yet", "wait for the frame to render", auto_close_seconds=4.0)
            return
        import imageio.v2 as imageio

        buffer = io.BytesIO()
        imageio.imwrite(buffer, self.frame.image, format="png")
        name = f"{self.source.name.split(' ')[0]}-{self.frame.output}.png"
        self.client.send_file_download(name, buffer.getvalue())

    def _sample_camera(self) -> None:
        now = time.monotonic()
        if now - self.last_sample < 1.0 / RECORD_FPS:
            return
        self.last_sample = now
        camera = self.client.camera
        self.recording.append((c2w_from_viser(camera.wxyz, camera.position), float(camera.fov)))
        self.recorded.content = f"{len(self.recording)} frames ({len(self.recording) / RECORD_FPS:.1f} s)"
        self.wake.set()  # keep sampling while recording

    def _clear_path(self) -> None:
        self.recording = []
        self.recorded.content = "0 frames"

    def _save_path(self) -> None:
        if not self.recording:
            self.client.add_notification("no path recorded", "tick 'record' and move the camera first",
                                         auto_close_seconds=5.0)
            return
        source = self.source
        if source.fixed_camera is not None:
            width, height = source.fixed_camera["width"], source.fixed_camera["height"]
            fovs = [source.fixed_fov_y()] * len(self.recording)
        else:
            width, height = size_for(self.client.camera.aspect, int(self.resolution.value))
            fovs = [fov for _, fov in self.recording]
        path = self.viewer.next_path_file()
        save_camera_path(path, np.stack([c2w for c2w, _ in self.recording]), fovs, width, height, RECORD_FPS)
        self.client.add_notification("camera path saved", f"{path} ({len(self.recording)} frames): "
                                     f"fastnerf render RUN --path {path} --out path.mp4", auto_close_seconds=15.0)
        self.client.send_file_download(path.name, path.read_bytes())
        print(f"camera path: {path} ({len(self.recording)} frames, {width}x{height})", flush=True)


def letterbox(image: np.ndarray, aspect: float) -> np.ndarray:
    """``image`` padded (with its edge colour: the background) or cropped at the sides to ``aspect``,
    so a fixed-size render keeps its shape on a canvas of another shape."""
    height, width = image.shape[:2]
    target = max(1, round(height * aspect))
    if target == width:
        return image
    if target < width:
        start = (width - target) // 2
        return image[:, start:start + target]
    left = (target - width) // 2
    return np.pad(image, ((0, 0), (left, target - width - left), (0, 0)), mode="edge")


def frame_record(frame: Frame, name: str) -> dict:
    """The frame's camera as plain values (``fastnerf.cameras.Camera`` arguments)."""
    camera = frame.camera
    return {"run": name, "output": frame.output, "c2w": camera.c2w.tolist(), "fx": float(camera.fx),
            "fy": float(camera.fy), "cx": float(camera.cx), "cy": float(camera.cy), "width": camera.width,
            "height": camera.height, "ms": round(frame.seconds * 1e3, 2)}
