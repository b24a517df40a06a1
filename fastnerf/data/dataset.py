"""``Dataset``: the images, cameras and scene bounds of one split, whatever the format on disk."""

from __future__ import annotations

from pathlib import Path

import torch

from ..cameras import Camera
from ..supersampling import check_factor, subpixel_offsets, subpixel_rays
from .images import ImageStack


class Dataset:
    """Posed images of one split.

    Attributes:
        images: ``[N,H,W,3]`` float32 in [0, 1], composited onto ``background`` (decoded on first use).
        alphas: ``[N,H,W]`` float32, or ``None`` when the images had no alpha channel.
        cameras: batch ``Camera`` of N, in the same order as ``images``.
        background: ``[3]`` colour the images were composited onto.
        aabb: ``[6]`` ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in world units, or ``None``.
        near, far: ray bounds in world units, or ``None``.
        aabb_scale: Instant-NGP's ``aabb_scale`` when ``aabb`` came from it (``aabb`` is then the
            cube of that many unit cubes it marches, the unit cube in its middle), else ``None``.
        forward_facing: True for LLFF-style captures (all cameras look one way).
        format: ``"blender"``, ``"ngp"``, ``"llff"``, ``"colmap"``, ``"dtu"`` (or ``"memory"`` when built from tensors).
        path: the folder (or file) it was read from; split: the split name.
    """

    def __init__(
        self,
        images: torch.Tensor | ImageStack,
        cameras: Camera,
        *,
        alphas: torch.Tensor | None = None,
        background=(1.0, 1.0, 1.0),
        aabb=None,
        near: float | None = None,
        far: float | None = None,
        aabb_scale: float | None = None,
        forward_facing: bool = False,
        format: str = "memory",
        path: Path | None = None,
        split: str = "train",
    ):
        if not cameras.is_batch:
            raise ValueError("Dataset: cameras must be a batch Camera")
        self.cameras = cameras
        self.background = torch.as_tensor(background, dtype=torch.float32)
        self.aabb = None if aabb is None else torch.as_tensor(aabb, dtype=torch.float32)
        self.near = None if near is None else float(near)
        self.far = None if far is None else float(far)
        self.aabb_scale = None if aabb_scale is None else float(aabb_scale)
        self.forward_facing = bool(forward_facing)
        self.format = format
        self.path = None if path is None else Path(path)
        self.split = split
        if isinstance(images, ImageStack):
            self._stack, self._images, self._alphas = images, None, None
            size, count = (images.width, images.height), len(images)
        else:
            self._stack, self._images, self._alphas = None, images, alphas
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"Dataset: images must be [N,H,W,3], got {list(images.shape)}")
            if alphas is not None and tuple(alphas.shape) != tuple(images.shape[:3]):
                raise ValueError(f"Dataset: alphas must be {list(images.shape[:3])}, got {list(alphas.shape)}")
            size, count = (images.shape[2], images.shape[1]), images.shape[0]
        if size != (cameras.width, cameras.height) or count != len(cameras):
            raise ValueError(
                f"Dataset: {count} images of {size[0]}x{size[1]} do not match "
                f"{len(cameras)} cameras of {cameras.width}x{cameras.height}"
            )

    # Pixels are decoded on first touch of `images` or `alphas`.
    def _decode(self) -> None:
        if self._images is None:
            images, alphas = self._stack.load()
            device = self.cameras.device
            self._images, self._alphas = images.to(device), None if alphas is None else alphas.to(device)
            self._stack = None

    @property
    def images(self) -> torch.Tensor:
        self._decode()
        return self._images

    @property
    def alphas(self) -> torch.Tensor | None:
        if self._stack is not None and not self._stack.has_alpha:
            return None
        self._decode()
        return self._alphas

    @property
    def width(self) -> int:
        return self.cameras.width

    @property
    def height(self) -> int:
        return self.cameras.height

    def __len__(self) -> int:
        return len(self.cameras)

    def sample_rays(self, n: int, generator: torch.Generator | None = None, *, supersample: int = 1) -> dict:
        """Rays through ``n`` pixels drawn uniformly over all images (with replacement).

        ``supersample = s``: ``s*s`` rays per pixel, one uniform within each cell of an ``s x s``
        grid over the pixel, pixel by pixel (average them with ``average_subpixels``).
        Returns ``dict(origins [n*s*s,3], directions [n*s*s,3], rgb [n,3], alpha [n] or None)`` on
        the dataset's device; ``generator`` (any device) makes the draw reproducible.
        """
        height, width = self.height, self.width
        total = len(self) * height * width
        draw_device = generator.device if generator is not None else torch.device("cpu")
        flat = torch.randint(total, (n,), generator=generator, device=draw_device).to(self.cameras.device)
        image_index = flat // (height * width)
        rows = (flat // width) % height
        cols = flat % width
        device = self.cameras.device
        offsets = (subpixel_offsets(1, device=device) if check_factor(supersample) == 1  # the centre
                   else subpixel_offsets(supersample, n, generator=generator, device=device))
        origins, directions = subpixel_rays(self.cameras, image_index, rows, cols, offsets)
        alphas = self.alphas
        return {
            "origins": origins,
            "directions": directions,
            "rgb": self.images[image_index, rows, cols],
            "alpha": None if alphas is None else alphas[image_index, rows, cols],
        }

    def to(self, device) -> "Dataset":
        """A copy on ``device`` (decodes the images if they were not yet)."""
        alphas = self.alphas
        return Dataset(
            self.images.to(device),
            self.cameras.to(device),
            alphas=None if alphas is None else alphas.to(device),
            background=self.background.to(device),
            aabb=None if self.aabb is None else self.aabb.to(device),
            near=self.near,
            far=self.far,
            aabb_scale=self.aabb_scale,
            forward_facing=self.forward_facing,
            format=self.format,
            path=self.path,
            split=self.split,
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(format={self.format!r}, split={self.split!r}, {len(self)} images of "
            f"{self.width}x{self.height}, path={str(self.path)!r})"
        )
