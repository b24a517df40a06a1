"""Approach 1, ``pose``: the report's distillation. Camera pose in (centre frequency-encoded,
orientation as the 6D rotation), an MLP to a low-resolution feature map, a convolutional decoder
with bilinear upsampling to the image. One forward pass per image, no 3D structure; it renders
only the camera (size and intrinsics) it was trained for."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...fields.upsampling import UPSAMPLERS
from ...options import Option
from . import register_student
from ._fixed_camera import FixedCameraRendering, PoseToImage, camera_config, default_n_up, scene_frame


OPTIONS = (
    Option("upsampler", "bilinear", "decoder upsampling", choices=UPSAMPLERS, flag=True),
    Option("channels", 64, "feature-map channels", minimum=1),
    Option("hidden", 256, "pose MLP width", minimum=1),
)


@register_student("pose", lr=5e-3, batch_views=4, options=OPTIONS)
class PoseStudent(FixedCameraRendering, nn.Module):
    """Pose -> image (see the module docstring).

    Args:
        width, height, fx, fy, cx, cy: the one camera model it renders.
        centre, scale: camera centres are encoded as ``(centre_world - centre) / scale``.
        position_freqs, rotation_freqs: frequency encodings of the centre and the 6D rotation.
        hidden, n_hidden: the pose MLP; code_dim: its output.
        channels: feature-map channels; n_up: doublings to the image (default: from an 8-pixel map).
        upsampler: ``"bilinear"`` or ``"transposed"``.
        background: the colour its training views were composited on (baked into its output).
    """

    kind = "pose"

    def __init__(self, *, width: int, height: int, fx: float, fy: float, cx: float, cy: float, centre=(0.0, 0.0, 0.0),
                 scale: float = 1.0, position_freqs: int = 6, rotation_freqs: int = 4, hidden: int,
                 n_hidden: int = 3, code_dim: int = 256, channels: int, n_up: int | None = None,
                 upsampler: str, min_channels: int = 16, background=(1.0, 1.0, 1.0)):
        # hidden, channels, upsampler: defaults from OPTIONS
        super().__init__()
        n_up = default_n_up(width, height) if n_up is None else int(n_up)
        self.camera = {"width": int(width), "height": int(height), "fx": float(fx), "fy": float(fy),
                       "cx": float(cx), "cy": float(cy)}
        self._config = dict(self.camera, centre=[float(v) for v in centre], scale=float(scale),
                            position_freqs=int(position_freqs), rotation_freqs=int(rotation_freqs), hidden=int(hidden),
                            n_hidden=int(n_hidden), code_dim=int(code_dim), channels=int(channels), n_up=n_up,
                            upsampler=upsampler, min_channels=int(min_channels),
                            background=[float(v) for v in background])
        self.net = PoseToImage(width=width, height=height, centre=centre, scale=scale, position_freqs=position_freqs,
                               rotation_freqs=rotation_freqs, hidden=hidden, n_hidden=n_hidden, code_dim=code_dim,
                               channels=channels, n_up=n_up, upsampler=upsampler, min_channels=min_channels)

    def config(self) -> dict:
        return {k: list(v) if isinstance(v, list) else v for k, v in self._config.items()}

    @classmethod
    def config_for(cls, teacher, dataset, sampler, **overrides) -> dict:
        centre, scale = scene_frame(teacher, dataset)
        return {**camera_config(sampler.template), "centre": centre, "scale": scale,
                "background": dataset.background.tolist(), **overrides}

    def distill_loss(self, pool, generator, *, step: int, batch_views: int, backend=None, **settings):
        cameras, images = pool.draw_views(batch_views, generator)
        loss = F.mse_loss(self.forward(cameras.c2w, backend=backend), images)
        return loss, {"mse": float(loss.detach())}
