"""Built-in procedural scenes, ray-traced exactly from analytic shapes and written in the
Blender format (RGBA PNG + ``transforms_{train,val,test}.json``), so they load with
``fastnerf.data.load`` like real data.

Cameras sit at distance 4 from the origin looking at it (OpenGL convention, +Z up): train and
val views at random directions between 10 degrees below and 80 degrees above the horizon, test
views on an orbit at 30 degrees elevation. The JSONs carry ``"aabb"`` (tight around the
objects) and ``"near"``/``"far"``; for a scene with an environment (``garden``, unbounded), far
reaches the environment sphere (camera distance + its radius), and the aabb stays the objects'.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ...cameras import Camera, look_at, orbit_path
from ...errors import UserError
from ..writers import write_blender
from .scenes import BUILDERS
from .tracer import Scene, render

SCENES = tuple(BUILDERS)  # the first is the demo default
CAMERA_RADIUS = 4.0
FOV_X = math.radians(42.0)
NEAR, FAR = 2.0, 6.0
TEST_ELEVATION_DEG = 30.0


def random_sphere_cameras(n: int, res: int, generator: torch.Generator, radius: float = CAMERA_RADIUS) -> Camera:
    """``n`` cameras at distance ``radius`` looking at the origin, directions uniform over the band
    from -10 to 80 degrees elevation."""
    azimuth = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi
    low, high = math.sin(math.radians(-10)), math.sin(math.radians(80))
    height = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
    ring = torch.sqrt(1 - height**2)
    eye = radius * torch.stack([ring * torch.cos(azimuth), ring * torch.sin(azimuth), height], -1)
    return Camera.from_fov(look_at(eye, (0.0, 0.0, 0.0)), res, res, FOV_X)


def write_scene(scene: Scene, out_dir: Path, *, n_train: int, n_val: int, n_test: int, res: int, seed: int,
                samples_per_axis: int = 3, radius: float = CAMERA_RADIUS, near: float = NEAR, far: float = FAR) -> Path:
    """Render ``scene`` from train / val / test cameras at distance ``radius`` into ``out_dir`` (Blender format)."""
    for name, count in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("res", res)):
        if isinstance(count, bool) or not isinstance(count, int) or count < (1 if name in ("n_train", "res") else 0):
            raise UserError(f"{name} must be a {'positive' if name in ('n_train', 'res') else 'non-negative'} integer, got {count!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if scene.environment is not None:  # every ray ends on the environment sphere
        far = max(far, radius + scene.environment_radius)
    generator = torch.Generator().manual_seed(seed)
    splits = {
        "train": random_sphere_cameras(n_train, res, generator, radius),
        "val": random_sphere_cameras(n_val, res, generator, radius) if n_val else None,
        "test": orbit_path(n_test, radius, TEST_ELEVATION_DEG, res, res, FOV_X) if n_test else None,
    }
    for split, cameras in splits.items():
        if cameras is None:
            continue
        images = render(scene, cameras, samples_per_axis=samples_per_axis)
        write_blender(out_dir, split, images, cameras, aabb=scene.aabb, near=near, far=far)
    return out_dir


def make_scene(name: str, out_dir, *, n_train: int = 100, n_val: int = 10, n_test: int = 20, res: int = 100,
               seed: int = 0, samples_per_axis: int = 3) -> Path:
    """Write built-in scene ``name`` (one of ``SCENES``) to ``out_dir`` in the Blender format; returns the folder.

    ``seed`` draws the train / val camera directions; ``samples_per_axis ** 2`` rays per pixel
    anti-alias the images.
    """
    if name not in BUILDERS:
        raise UserError(f"unknown scene {name!r}; built-in scenes are: {', '.join(SCENES)} (or 'random')")
    return write_scene(BUILDERS[name](), Path(out_dir), n_train=n_train, n_val=n_val, n_test=n_test, res=res,
                       seed=seed, samples_per_axis=samples_per_axis)


def make_random_scenes(n: int, out_dir, *, seed: int, n_train: int = 24, n_val: int = 0, n_test: int = 8,
                       res: int = 64, samples_per_axis: int = 2) -> list[Path]:
    """Write ``n`` randomised scenes (``out_dir/scene_0000``, ...) for multi-scene models (PixelNeRF).

    Scene k is drawn from ``seed`` and k alone, so adding scenes never changes earlier ones.
    Cameras are closer than for the named scenes (``random_scenes.CAMERA_RADIUS``), so the
    objects fill the small images.
    """
    from .random_scenes import CAMERA_RADIUS as RANDOM_RADIUS, FAR as RANDOM_FAR, NEAR as RANDOM_NEAR, random_scene

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"the number of random scenes must be a positive integer, got {n!r}")
    out_dir = Path(out_dir)
    paths = []
    for k in range(n):
        scene_seed = seed * 100_003 + k
        paths.append(write_scene(random_scene(scene_seed), out_dir / f"scene_{k:04d}", n_train=n_train, n_val=n_val,
                                 n_test=n_test, res=res, seed=scene_seed, samples_per_axis=samples_per_axis,
                                 radius=RANDOM_RADIUS, near=RANDOM_NEAR, far=RANDOM_FAR))
    return paths


__all__ = ["SCENES", "make_scene", "make_random_scenes", "render", "Scene"]
