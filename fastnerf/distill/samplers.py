"""Camera samplers around a teacher's training cameras, for rendering distillation views.

- ``OrbitSampler`` (object-centric captures): cameras at the training cameras' range of
  distances from the scene centre and in their band of elevations above the scene's up axis, at
  any azimuth, looking at the centre.
- ``PerturbedPoseSampler`` (forward-facing captures): training poses with their centres moved by
  a fraction of the cameras' spread and their orientations turned by a few degrees.

Both give batch ``Camera`` objects with the intrinsics, lens and size of the training cameras (or
those of ``size``), drawn with a ``torch.Generator`` (any device; the cameras are on ``device``).
"""

from __future__ import annotations

import math

import torch

from ..cameras import Camera, look_at


def _uniform(n: int, generator, low: float, high: float) -> torch.Tensor:  # [n] float64 on the CPU
    device = generator.device if generator is not None else torch.device("cpu")
    return (low + (high - low) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)).cpu()


def _normal(shape, generator) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float64).cpu()


def scene_up(c2w: torch.Tensor) -> torch.Tensor:  # [N,4,4] -> [3] float64, unit
    """The world's up axis for cameras held level (no roll, as ``look_at`` makes them): the direction
    most nearly perpendicular to every camera's right axis. Where the right axes do not pin it down
    (all nearly parallel), the mean of the cameras' up axes."""
    c2w = c2w.double()
    mean_up = c2w[:, :3, 1].mean(0)
    mean_up = mean_up / mean_up.norm() if mean_up.norm() > 1e-9 else torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    right = c2w[:, :3, 0]  # [N,3]
    values, vectors = torch.linalg.eigh(right.T @ right / len(right))  # ascending
    if values[1] < 0.05:  # the right axes span (about) one direction only
        return mean_up
    up = vectors[:, 0]
    return up if float(up @ mean_up) >= 0 else -up


class _Sampler:
    def __init__(self, cameras: Camera, size: tuple[int, int] | None):
        if not cameras.is_batch or len(cameras) < 1:
            raise ValueError("sampler: cameras must be a non-empty batch Camera")
        first = cameras[0:1]
        if size is not None:
            first = first.resize(*size)
        self.template = first.to("cpu")  # intrinsics and size every sampled camera gets
        self.device = cameras.device

    def _cameras(self, c2w: torch.Tensor) -> Camera:  # [n,4,4]
        t = self.template
        n = c2w.shape[0]
        lens = {} if not t.has_distortion else {"distortion_model": t.distortion_model,
                                                 "distortion": t.distortion.expand(n, -1)}
        return Camera(c2w.float(), t.fx.expand(n), t.fy.expand(n), t.cx.expand(n), t.cy.expand(n), t.width, t.height,
                      check=False, **lens).to(self.device)

    @property
    def width(self) -> int:
        return self.template.width

    @property
    def height(self) -> int:
        return self.template.height


class OrbitSampler(_Sampler):
    """Cameras looking at ``centre [3]`` from the training cameras' distances and elevation band.

    The up axis is ``scene_up`` of the training cameras (+Z for the built-in scenes).
    """

    def __init__(self, cameras: Camera, centre, *, size: tuple[int, int] | None = None):
        super().__init__(cameras, size)
        c2w = cameras.c2w.detach().cpu().double()
        self.centre = torch.as_tensor(centre, dtype=torch.float64).reshape(3)
        self.up = scene_up(c2w)
        offsets = c2w[:, :3, 3] - self.centre  # [N,3]
        distance = offsets.norm(dim=-1).clamp(min=1e-6)
        sin_elevation = (offsets @ self.up / distance).clamp(-1, 1)
        self.distance_range = (float(distance.min()), float(distance.max()))
        self.sin_elevation_range = (float(sin_elevation.min()), float(sin_elevation.max()))
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        if abs(float(self.up @ helper)) > 0.9:
            helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        axis_a = helper - (helper @ self.up) * self.up
        self.axis_a = axis_a / axis_a.norm()
        self.axis_b = torch.linalg.cross(self.up, self.axis_a)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Camera:
        """``n`` cameras: azimuth uniform, elevation uniform on the sphere within the band, distance uniform."""
        azimuth = _uniform(n, generator, 0.0, 2 * math.pi)
        height = _uniform(n, generator, *self.sin_elevation_range)
        distance = _uniform(n, generator, *self.distance_range)
        ring = torch.sqrt((1 - height**2).clamp(min=0))
        direction = (ring[:, None] * (torch.cos(azimuth)[:, None] * self.axis_a + torch.sin(azimuth)[:, None] * self.axis_b)
                     + height[:, None] * self.up)
        # A camera straight above or below the centre has no defined roll; nudge it off the axis.
        direction = torch.where((ring < 1e-3)[:, None], direction + 1e-2 * self.axis_a, direction)
        eye = self.centre + distance[:, None] * direction
        return self._cameras(look_at(eye, self.centre, self.up))


def _axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:  # [n,3], [n] -> [n,3,3] (Rodrigues)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype).expand_as(skew)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    return eye + s * skew + (1 - c) * skew @ skew


class PerturbedPoseSampler(_Sampler):
    """Training poses, each centre moved by ``position_jitter`` x the cameras' spread (per axis,
    Gaussian) and each orientation turned about a random axis by up to ``max_angle_deg``."""

    def __init__(self, cameras: Camera, *, size: tuple[int, int] | None = None, position_jitter: float = 0.5,
                 max_angle_deg: float = 3.0):
        super().__init__(cameras, size)
        self.c2w = cameras.c2w.detach().cpu().double()
        spread = self.c2w[:, :3, 3].std(0) if len(self.c2w) > 1 else torch.zeros(3, dtype=torch.float64)
        self.sigma = position_jitter * spread  # [3]
        self.max_angle = math.radians(max_angle_deg)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Camera:
        pick = (_uniform(n, generator, 0.0, 1.0) * len(self.c2w)).long().clamp(max=len(self.c2w) - 1)
        c2w = self.c2w[pick].clone()
        c2w[:, :3, 3] += _normal((n, 3), generator) * self.sigma
        turn = _axis_angle(_normal((n, 3), generator), _uniform(n, generator, 0.0, self.max_angle))
        c2w[:, :3, :3] = turn @ c2w[:, :3, :3]
        return self._cameras(c2w)


def sampler_for(dataset, *, centre=None, size: tuple[int, int] | None = None):
    """The sampler that fits ``dataset`` (its train split): perturbed poses for forward-facing
    captures, else an orbit band around ``centre`` (default: the centre of the dataset's aabb, or the origin)."""
    if dataset.forward_facing:
        return PerturbedPoseSampler(dataset.cameras, size=size)
    if centre is None:
        centre = (dataset.aabb[:3] + dataset.aabb[3:]) / 2 if dataset.aabb is not None else torch.zeros(3)
    return OrbitSampler(dataset.cameras, centre, size=size)
