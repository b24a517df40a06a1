"""What the viewer draws: a model with its training cameras and images (``ViewedModel``), from a
run folder (``load_viewed_run``) or handed over by training (``fastnerf.viewer.live``).

Rendering goes through ``fastnerf.render`` only, so every kind works; what a kind offers is read
off the model, never its name: the outputs it returns (colour, depth, opacity), a fixed camera
(``model.camera``, a dict of ``width, height, fx, fy, cx, cy``: kinds that render only the camera
they were trained for) and source views (``needs_views``: image-conditioned kinds).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cameras import Camera
from ..errors import UserError
from ..rendering import render
from .poses import camera_at

OUTPUT_NAMES = {"rgb": "colour", "depth": "depth", "opacity": "opacity"}
FAR = 150.0  # "nothing here" for the browser's depth test (viser encodes depth up to ~167)


@dataclass
class Frame:
    """One rendered view: ``image [H,W,3]`` uint8 and the camera it was rendered at;
    ``depth_z [H,W]``: distance along the optical axis (far where nothing was hit), for
    drawing the scene's frustums behind what the model shows (None when not available)."""

    image: np.ndarray
    camera: Camera
    seconds: float
    output: str
    depth_z: np.ndarray | None = None


class ViewedModel:
    """A model, its training cameras ``cameras`` (batch) and ``images [N,H,W,3]`` in [0, 1].

    Training hands over new weights with ``offer_weights`` (never waits for a render: the next
    render swaps them in); ``version`` grows with every offer (and ``newer_weights``) so views know
    to redraw; ``status`` is a line about the model (training progress) shown beside the render.
    ``run_work`` runs a render and returns its frame: here, on the asking thread, unless training
    hands renders to its own thread between steps (``fastnerf.viewer.between_steps``), and then
    ``longest_frame`` bounds the seconds one frame may hold training up.
    """

    def __init__(self, name: str, model, cameras: Camera, images: torch.Tensor, *, centre=None, views=None):
        self.name, self.model, self.cameras, self.images, self.views = name, model, cameras.batch(), images, views
        self.lock = threading.Lock()
        self.version, self.status, self._pending = 0, "", None
        self.run_work: Callable = lambda work: work()
        self.longest_frame: float | None = None  # seconds a frame may take (views size it so); None: any
        origins = self.cameras.c2w[:, :3, 3].double()
        self.centre = origins.mean(0) if centre is None else torch.as_tensor(centre, dtype=torch.float64)
        self.radius = float((origins - self.centre).norm(dim=-1).mean()) or 1.0
        up = self.cameras.c2w[:, :3, 1].double().mean(0)
        self.up = up / up.norm() if float(up.norm()) > 1e-6 else torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        self.fixed_camera = _fixed_camera(model)
        self.outputs = self._probe_outputs()

    def _probe_outputs(self) -> list[str]:
        """The outputs this model renders (a tiny render from the first training camera)."""
        result = self._render(self.camera_for(self.cameras.c2w[0], 0.8, 8, 8))
        return [key for key in OUTPUT_NAMES if key in result]

    def camera_for(self, c2w, fov_y: float, width: int, height: int) -> Camera:
        """The camera this model renders for a pose: the browser's, or the model's own fixed camera."""
        if self.fixed_camera is not None:
            c = self.fixed_camera
            return Camera(torch.as_tensor(np.asarray(c2w), dtype=torch.float32), c["fx"], c["fy"], c["cx"], c["cy"],
                          c["width"], c["height"], check=False)
        return camera_at(c2w, fov_y, width, height)

    def fixed_fov_y(self) -> float:
        """Vertical field of view (radians) of the fixed camera."""
        c = self.fixed_camera
        return 2 * math.atan(0.5 * c["height"] / c["fy"])

    def render(self, camera: Camera, output: str = "rgb") -> Frame:
        return self.run_work(lambda: self._frame(camera, output))

    def _frame(self, camera: Camera, output: str) -> Frame:
        start = time.perf_counter()
        result = self._render(camera)
        seconds = time.perf_counter() - start
        if output not in result:
            raise UserError(f"{self.name} renders {', '.join(self.outputs)}; not {output}")
        return Frame(to_display(result, output), camera, seconds, output, self._depth_z(result, camera))

    def _depth_z(self, result: dict, camera: Camera) -> np.ndarray | None:
        if "depth" not in result or "opacity" not in result or self.model.config().get("ndc"):
            return None  # (NDC depth is not a world distance)
        _, directions = camera.rays()  # [H,W,3] unit length
        forward = -camera.c2w[:3, 2].to(directions)
        depth = result["depth"].to(directions) / result["opacity"].to(directions).clamp(min=1e-6)
        depth_z = depth * (directions @ forward)
        return torch.where(result["opacity"].to(directions) > 0.5, depth_z, FAR).cpu().numpy()

    def _render(self, camera: Camera) -> dict:
        with self.lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                state, status = pending
                self.model.load_state_dict(state)
                if status is not None:
                    self.status = status
            return render(self.model, camera, views=self.views)

    def offer_weights(self, state: dict, status: str | None = None) -> None:
        """New weights (a ``state_dict``: the averaged weights of a run in training) for the next
        render, and the status line that goes with them."""
        self._pending = (state, status)
        self.version += 1

    def newer_weights(self) -> None:
        """Training has moved on: views redraw (``train --viewer`` copies the weights into ``model``
        on the training thread before it draws their frames)."""
        self.version += 1


def to_display(result: dict, output: str) -> np.ndarray:
    """``[H,W,3]`` uint8 of one output: colour as is; depth grey (near bright) between its 2nd and
    98th percentile over covered pixels; opacity grey."""
    value = result[output].detach().float().cpu()
    if output == "depth":
        covered = value[result["opacity"].cpu() > 0.5] if "opacity" in result else value.flatten()
        covered = covered if covered.numel() else value.flatten()
        low, high = (torch.quantile(covered, q).item() for q in (0.02, 0.98))
        value = 1.0 - (value - low) / max(high - low, 1e-6)
    if value.ndim == 2:
        value = value[..., None].expand(*value.shape, 3)
    return (value.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def _fixed_camera(model) -> dict | None:
    camera = getattr(model, "camera", None)
    if isinstance(camera, dict) and {"width", "height", "fx", "fy", "cx", "cy"} <= camera.keys():
        return camera
    return None


def run_name(run) -> str:
    path = Path(run)
    return path.parent.name if path.is_file() else path.name


def load_viewed_run(run, *, device=None, name: str | None = None, scene=None, source_views=None) -> ViewedModel:
    """A run folder (or checkpoint) with the training cameras and images of its own dataset;
    image-conditioned runs: the scene ``scene`` (default: the first of its dataset), conditioned
    on its views ``source_views`` (default ``[0]``)."""
    from ..train import load_run

    model, checkpoint = load_run(run, device=device)
    name = name or f"{run_name(run)} ({checkpoint['model_kind']})"
    return viewed_model(name, model, checkpoint.get("dataset", {}), where=str(run), scene=scene,
                        source_views=source_views)


def viewed_model(name: str, model, dataset_info: dict, *, where: str, scene=None, source_views=None) -> ViewedModel:
    """``model`` with the training cameras and images of the dataset ``dataset_info`` names (what a
    checkpoint records: ``path``, ``downscale``, ``multi_scene``)."""
    from ..data import load, load_scenes

    data, downscale = dataset_info.get("path"), dataset_info.get("downscale", 1)
    if data is None:
        raise UserError(f"{where}: the checkpoint does not say which dataset it was trained on")
    config = model.config()
    centre = None
    if config.get("aabb") is not None and not config.get("ndc"):
        aabb = torch.tensor(config["aabb"], dtype=torch.float64)
        centre = (aabb[:3] + aabb[3:]) / 2
    if dataset_info.get("multi_scene") or getattr(model, "needs_views", False):
        if scene is not None:
            images, cameras = load_scene_views(scene, downscale)
        else:
            first = load_scenes(data, "train", downscale=downscale)[0]
            images, cameras = first.images, first.cameras
        chosen = list(source_views or [0])
        bad = [v for v in chosen if not 0 <= v < len(cameras)]
        if bad:
            raise UserError(f"--source-views {bad} out of range: the scene has views 0..{len(cameras) - 1}")
        views = (images[chosen], cameras[chosen])
        return ViewedModel(name, model, cameras, images, centre=centre, views=views)
    if scene is not None or source_views:
        raise UserError(f"{where}: --scene and --source-views apply to image-conditioned runs")
    dataset = load(data, "train", downscale=downscale)
    return ViewedModel(name, model, dataset.cameras, dataset.images, centre=centre)


def load_scene_views(path, downscale: int):
    """``(images [V,H,W,3], cameras)`` of one scene: a Blender scene's train views, or the first
    scene (SRN instance, DTU scan) of what ``load_scenes`` finds at ``path``."""
    from ..data import load, load_scenes

    path = Path(path)
    if (path / "transforms_train.json").is_file():
        train = load(path, "train", downscale=downscale)
        return train.images, train.cameras
    first = load_scenes(path, "test", downscale=downscale)[0]
    return first.images, first.cameras
