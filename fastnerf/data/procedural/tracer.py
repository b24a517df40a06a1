"""Exact ray tracing of a ``Scene`` of analytic shapes, supersampled for anti-aliasing.

Shading (all view-consistent except the specular lobe, which moves with the viewer):
``albedo * (ambient + key * visibility * max(n.l, 0) + fill * max(n.l_fill, 0))
+ specular * key * visibility * max(n.h, 0) ^ shininess``, where ``visibility`` is the fraction
of a fixed set of directions inside the key light's cone that reach the sky (soft shadows and
soft self-occlusion). Pixels no object covers have alpha 0, unless the scene has an
``environment``: a textured sphere of ``environment_radius`` about the origin around everything
(unlit, casting no shadow), which every ray that misses the objects meets (alpha 1): an
unbounded scene, whose background is far outside the objects' box.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch

from ...cameras import Camera
from .materials import Material
from .shapes import INF, Shape, rays_near_box

SHADOW_EPSILON = 1e-3
AABB_MARGIN = 0.02


@dataclass
class SceneObject:
    shape: Shape
    material: Material

    def __post_init__(self):
        self.bounds = self.shape.bounds()


@dataclass
class Scene:
    objects: list[SceneObject]
    key_direction: tuple[float, float, float] = (0.45, -0.55, 0.7)  # towards the key light
    key_spread_deg: float = 6.0  # cone half-angle of the key light (soft shadow size)
    key_strength: float = 0.85
    fill_direction: tuple[float, float, float] = (-0.6, 0.5, 0.35)
    fill_strength: float = 0.2
    ambient: float = 0.22
    shadow_samples: int = 6
    environment: Material | None = None  # the far textured sphere of an unbounded scene (None: alpha 0 there)
    environment_radius: float = 20.0
    _light_dirs: torch.Tensor | None = field(default=None, repr=False)

    @property
    def aabb(self) -> tuple[float, ...]:
        """``(xmin, ymin, zmin, xmax, ymax, zmax)`` around every object, with a small margin."""
        lows, highs = zip(*(item.bounds for item in self.objects))
        low = torch.stack(lows).amin(0) - AABB_MARGIN
        high = torch.stack(highs).amax(0) + AABB_MARGIN
        return tuple(round(v, 4) for v in torch.cat([low, high]).tolist())

    def light_directions(self) -> torch.Tensor:
        """``[S,3]`` fixed directions spread over the key light's cone (a Fibonacci spiral)."""
        if self._light_dirs is None:
            key = torch.tensor(self.key_direction, dtype=torch.float32)
            key = key / key.norm()
            helper = torch.tensor([0.0, 0.0, 1.0]) if abs(key[2]) < 0.9 else torch.tensor([1.0, 0.0, 0.0])
            side = torch.linalg.cross(key, helper)
            side = side / side.norm()
            other = torch.linalg.cross(key, side)
            index = torch.arange(self.shadow_samples, dtype=torch.float32) + 0.5
            radius = torch.sqrt(index / self.shadow_samples) * math.tan(math.radians(self.key_spread_deg))
            angle = index * math.pi * (3 - math.sqrt(5))
            dirs = key + radius[:, None] * (torch.cos(angle)[:, None] * side + torch.sin(angle)[:, None] * other)
            self._light_dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        return self._light_dirs


def _inverse(directions):
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    return 1.0 / safe


def nearest_hit(scene: Scene, origins, directions, t_min: float = 0.0):
    """``(t [R], normals [R,3], object_index [R] long, -1 where nothing is hit)``.

    Only rays that enter the scene's box are traced, and each object is tested exactly only on
    the rays that reach its own box before the nearest hit so far.
    """
    count = origins.shape[0]
    aabb = torch.tensor(scene.aabb)
    in_scene = torch.nonzero(
        rays_near_box(origins, _inverse(directions), aabb[:3], aabb[3:], torch.full((count,), INF))
    ).squeeze(1)
    origins, directions = origins[in_scene], directions[in_scene]
    inverse_directions = _inverse(directions)
    best_t = torch.full(origins.shape[:1], INF)
    best_n = torch.zeros_like(origins)
    best_index = torch.full(origins.shape[:1], -1, dtype=torch.long)
    for index, item in enumerate(scene.objects):
        low, high = item.bounds
        rays = torch.nonzero(rays_near_box(origins, inverse_directions, low, high, best_t)).squeeze(1)
        if rays.numel() == 0:
            continue
        t, normals = item.shape.intersect(origins[rays], directions[rays], t_min)
        closer = t < best_t[rays]
        rays, t, normals = rays[closer], t[closer], normals[closer]
        best_t[rays], best_n[rays], best_index[rays] = t, normals, index
    all_t = torch.full((count,), INF)
    all_n = torch.zeros(count, 3)
    all_index = torch.full((count,), -1, dtype=torch.long)
    all_t[in_scene], all_n[in_scene], all_index[in_scene] = best_t, best_n, best_index
    return all_t, all_n, all_index


def _occluded(scene: Scene, origins, directions) -> torch.Tensor:
    """``[R]`` bool: the ray hits any object (a shadow ray)."""
    blocked = torch.zeros(origins.shape[0], dtype=torch.bool)
    inverse_directions = _inverse(directions)
    no_limit = torch.full(origins.shape[:1], INF)
    for item in scene.objects:
        low, high = item.bounds
        rays = torch.nonzero(~blocked & rays_near_box(origins, inverse_directions, low, high, no_limit)).squeeze(1)
        if rays.numel():
            t, _ = item.shape.intersect(origins[rays], directions[rays], SHADOW_EPSILON)
            blocked[rays[torch.isfinite(t)]] = True
    return blocked


def shade(scene: Scene, origins, directions) -> tuple[torch.Tensor, torch.Tensor]:
    """Trace ``origins, directions [R,3]`` -> ``(rgb [R,3] premultiplied, coverage [R])``."""
    t, normals, object_index = nearest_hit(scene, origins, directions)
    hit = object_index >= 0
    rgb = torch.zeros_like(origins)
    coverage = hit.float()
    if scene.environment is not None and not hit.all():
        rgb[~hit] = environment_colour(scene, origins[~hit], directions[~hit])
        coverage = torch.ones_like(coverage)
    if not hit.any():
        return rgb, coverage
    view = directions[hit]
    points = origins[hit] + t[hit, None] * view
    normals = normals[hit]
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    normals = torch.where((_dot(normals, view) > 0)[:, None], -normals, normals)  # face the viewer
    ids = object_index[hit]

    albedo = torch.zeros_like(points)
    specular = torch.zeros(points.shape[0])
    shininess = torch.ones(points.shape[0])
    for index, item in enumerate(scene.objects):
        mask = ids == index
        if mask.any():
            albedo[mask] = item.material.albedo(points[mask])
            specular[mask] = item.material.specular
            shininess[mask] = item.material.shininess

    shadow_origins = points + SHADOW_EPSILON * 4 * normals
    light_dirs = scene.light_directions()
    visibility = torch.zeros(points.shape[0])
    for light_dir in light_dirs:
        lit = torch.nonzero(_dot(normals, light_dir) > 0).squeeze(1)  # only lit points need a shadow ray
        blocked = _occluded(scene, shadow_origins[lit], light_dir.expand(lit.numel(), 3))
        visibility[lit[~blocked]] += 1.0
    visibility /= len(light_dirs)

    key = torch.tensor(scene.key_direction, dtype=torch.float32)
    key = key / key.norm()
    fill = torch.tensor(scene.fill_direction, dtype=torch.float32)
    fill = fill / fill.norm()
    lambert = _dot(normals, key.expand_as(normals)).clamp_min(0)
    fill_lambert = _dot(normals, fill.expand_as(normals)).clamp_min(0)
    diffuse = scene.ambient + scene.key_strength * visibility * lambert + scene.fill_strength * fill_lambert
    half_vector = key - view
    half_vector = half_vector / half_vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    highlight = _dot(normals, half_vector).clamp_min(0) ** shininess
    colour = albedo * diffuse[:, None] + (specular * scene.key_strength * visibility * highlight)[:, None]
    rgb[hit] = colour.clamp(0, 1)
    return rgb, coverage


def environment_colour(scene: Scene, origins, directions) -> torch.Tensor:
    """``[R,3]`` albedo of the environment sphere where rays from inside it leave it (unlit)."""
    half_b = _dot(origins, directions)
    c = _dot(origins, origins) - scene.environment_radius**2  # < 0: the origins are inside the sphere
    a = _dot(directions, directions)
    t = (-half_b + torch.sqrt((half_b**2 - a * c).clamp_min(0))) / a
    return scene.environment.albedo(origins + t[:, None] * directions).clamp(0, 1)


def _dot(a, b):
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


@contextlib.contextmanager
def _one_thread():
    """Run on one thread: the tracer's many small ops gain nothing from threads, and on a busy
    machine OpenMP spin-waiting makes them orders of magnitude slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def render(scene: Scene, cameras: Camera, *, samples_per_axis: int = 3, max_rays: int = 65_536) -> torch.Tensor:
    """Render every camera of a batch -> RGBA ``[B,H,W,4]`` (straight alpha) in [0, 1].

    Each pixel averages ``samples_per_axis ** 2`` stratified sub-pixel rays (box filter).
    """
    cameras = cameras.batch()
    height, width = cameras.height, cameras.width
    spp = samples_per_axis**2
    offsets = (torch.arange(samples_per_axis, dtype=torch.float32) + 0.5) / samples_per_axis
    sub_y, sub_x = torch.meshgrid(offsets, offsets, indexing="ij")
    sub_x, sub_y = sub_x.reshape(-1), sub_y.reshape(-1)  # [spp]
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixel_x = (cols.reshape(-1, 1) + sub_x).reshape(-1)  # [H*W*spp]
    pixel_y = (rows.reshape(-1, 1) + sub_y).reshape(-1)
    out = torch.zeros(len(cameras), height, width, 4)
    with _one_thread():
        _render_into(out, scene, cameras, pixel_x, pixel_y, spp, max_rays)
    return out.clamp(0, 1)


def _render_into(out, scene, cameras, pixel_x, pixel_y, spp: int, max_rays: int) -> None:
    height, width = cameras.height, cameras.width
    views_per_chunk = max(1, max_rays // pixel_x.numel())
    for start in range(0, len(cameras), views_per_chunk):
        stop = min(start + views_per_chunk, len(cameras))
        count = stop - start
        camera_index = torch.arange(start, stop).repeat_interleave(pixel_x.numel())
        origins, directions = cameras.rays_through(camera_index, pixel_x.repeat(count), pixel_y.repeat(count))
        rgb, coverage = shade(scene, origins.float(), directions.float())
        rgb = rgb.reshape(count, height, width, spp, 3).mean(3)  # premultiplied
        alpha = coverage.reshape(count, height, width, spp).mean(3)
        out[start:stop, ..., :3] = torch.where(alpha[..., None] > 0, rgb / alpha.clamp_min(1e-8)[..., None], rgb)
        out[start:stop, ..., 3] = alpha
