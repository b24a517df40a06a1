"""What the fixed-camera students (``pose``, ``shared``) share: the one camera model they were
trained for, the check that refuses any other, and the pose -> feature map -> image network."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...cameras import INTRINSICS_TOLERANCE, check_fixed_intrinsics
from ...errors import UserError
from ...fields.mlp import MLP
from ...fields.pose_encoding import PoseEncoding
from ...fields.upsampling import UpsamplingDecoder
from ._background import check_background



def default_n_up(width: int, height: int, base: int = 8) -> int:
    """Doublings from a feature map of about ``base`` pixels on its longer side up to the image."""
    return max(0, math.ceil(math.log2(max(width, height) / base)))


def scene_frame(teacher, dataset) -> tuple[list, float]:
    """``(centre [3], scale)`` the pose encoding normalises camera centres with: the teacher's box
    centre (the mean camera centre for NDC teachers) and the mean camera distance from it."""
    origins = dataset.cameras.c2w[:, :3, 3].detach().cpu().double()
    config = teacher.config()
    if config.get("ndc") or "aabb" not in config:
        centre = origins.mean(0)
        scale = float((origins - centre).norm(dim=-1).max()) or 1.0
    else:
        aabb = torch.as_tensor(config["aabb"], dtype=torch.float64)
        centre = (aabb[:3] + aabb[3:]) / 2
        scale = float((origins - centre).norm(dim=-1).mean()) or 1.0
    return [float(v) for v in centre], scale


def camera_config(camera) -> dict:
    """The plain-value camera model of a (batch) ``Camera``'s first camera (a pinhole one)."""
    camera.require_pinhole("the pose and shared students (they learn one pinhole camera)")
    first = camera.batch()[0]
    return {"width": camera.width, "height": camera.height, "fx": float(first.fx), "fy": float(first.fy),
            "cx": float(first.cx), "cy": float(first.cy)}


def check_camera(model, camera) -> None:
    """``UserError`` unless every camera of ``camera`` has ``model``'s size and intrinsics."""
    c = model.camera
    camera.require_pinhole(f"the {model.kind!r} student (it renders the pinhole camera it was trained for)")
    batch = camera.batch()
    wanted = torch.tensor([c["fx"], c["fy"], c["cx"], c["cy"]])
    got = torch.stack([batch.fx, batch.fy, batch.cx, batch.cy], -1).detach().cpu()  # [B,4]
    same_intrinsics = bool(((got - wanted).abs() <= INTRINSICS_TOLERANCE * wanted.abs().clamp(min=1.0)).all())
    if (camera.width, camera.height) != (c["width"], c["height"]) or not same_intrinsics:
        raise UserError(
            f"the {model.kind!r} student renders only the camera it was trained for: {c['width']}x{c['height']} "
            f"pixels, fx={c['fx']:.4g}, fy={c['fy']:.4g}, cx={c['cx']:.4g}, cy={c['cy']:.4g}; got "
            f"{camera.width}x{camera.height} with fx={float(got[0, 0]):.4g}, fy={float(got[0, 1]):.4g}, "
            f"cx={float(got[0, 2]):.4g}, cy={float(got[0, 3]):.4g} (the 'hybrid' student renders any camera)")


class PoseToImage(nn.Module):
    """``c2w [B,4,4]`` -> code ``[B,code_dim]`` -> feature map ``[B,channels,h0,w0]`` -> image.

    ``h0 = ceil(height / 2^n_up)``; the decoder's output is cropped to ``height x width``.
    """

    def __init__(self, *, width: int, height: int, centre, scale: float, position_freqs: int, rotation_freqs: int,
                 hidden: int, n_hidden: int, code_dim: int, channels: int, n_up: int, upsampler: str,
                 min_channels: int):
        super().__init__()
        self.width, self.height = int(width), int(height)
        factor = 2 ** int(n_up)
        self.map_height, self.map_width = math.ceil(height / factor), math.ceil(width / factor)
        self.channels = int(channels)
        self.encoding = PoseEncoding(centre, scale, position_freqs=position_freqs, rotation_freqs=rotation_freqs)
        self.encoder = MLP(self.encoding.out_dim, code_dim, width=hidden, n_hidden=n_hidden)
        self.to_map = nn.Linear(code_dim, channels * self.map_height * self.map_width)
        self.decoder = UpsamplingDecoder(channels, n_up, mode=upsampler, min_channels=min_channels)

    def code(self, c2w: torch.Tensor, *, backend=None) -> torch.Tensor:  # [B,4,4] -> [B,code_dim]
        return torch.relu(self.encoder(self.encoding(c2w, backend=backend)))

    def decode(self, code: torch.Tensor) -> torch.Tensor:  # [B,code_dim] -> [B,H,W,3]
        feature_map = self.to_map(code).reshape(-1, self.channels, self.map_height, self.map_width)
        image = self.decoder(feature_map)[:, :, : self.height, : self.width]
        return image.permute(0, 2, 3, 1)


class FixedCameraRendering:
    """Inference shared by the students that map a pose to a whole image (``pose``, ``shared``):
    ``self.net`` is their ``PoseToImage``; they render the one camera model they were trained for."""

    def forward(self, c2w: torch.Tensor, *, backend=None) -> torch.Tensor:  # [B,4,4] -> [B,H,W,3]
        return self.net.decode(self.net.code(c2w, backend=backend))

    def export_forward(self, c2w: torch.Tensor, intrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """``c2w [B,4,4]`` -> ``rgb [B,H,W,3]``. The exported graph takes no intrinsics (they are
        fixed by training: ``fixed_intrinsics``); ``intrinsics [B,4]`` given here must be those."""
        if intrinsics is not None:
            check_fixed_intrinsics(self.fixed_intrinsics(), intrinsics, f"the {self.kind!r} student")
        return self.forward(c2w, backend="torch")

    def fixed_intrinsics(self) -> list[float]:
        """``[fx, fy, cx, cy]`` of the one camera it renders (``fastnerf.export`` records them in the file)."""
        return [self.camera[name] for name in ("fx", "fy", "cx", "cy")]

    def render_camera(self, camera, *, backend=None, background=None, chunk: int = 8192) -> dict:
        """``dict(rgb [H,W,3] or [B,H,W,3])``; ``UserError`` for another size or intrinsics, or a
        ``background`` other than the one it was trained on."""
        check_camera(self, camera)
        check_background(self, background, self._config["background"])
        rgb = self.forward(camera.batch().c2w.to(self.net.to_map.weight.device), backend=backend)
        return {"rgb": rgb if camera.is_batch else rgb[0]}
