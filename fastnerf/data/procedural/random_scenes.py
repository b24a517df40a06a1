"""Randomised scenes for multi-scene models (PixelNeRF), every scene drawn from its own seed.

What varies, so that a model must read the images rather than memorise a layout: 1 to 5 objects
of six kinds (sphere, box, cylinder, cup, bowl, thin rod), their size (0.12 to 0.4), placement
(on a plinth of random radius, sometimes raised or floating above it), texture (every pattern of
``textures.PATTERNS`` at random frequencies and orientations), colours, gloss, and the lighting
(key direction, key and ambient strength). Everything fits in the box ``[-1.1, 1.1]^2 x
[-0.5, 1.1]``, seen from ``CAMERA_RADIUS`` (closer than the named scenes, so objects fill the
small images used for multi-scene training).
"""

from __future__ import annotations

import math
import random

from .materials import Material
from .shapes import Box, Sphere, bowl, cup, cylinder
from .textures import PATTERNS
from .tracer import Scene, SceneObject

UP = (0.0, 0.0, 1.0)
FLOOR = -0.3
KINDS = ("sphere", "box", "cylinder", "cup", "bowl", "rods")
CAMERA_RADIUS = 3.2
NEAR, FAR = 1.5, 5.0


def _colour(rng: random.Random) -> tuple[float, float, float]:
    return tuple(round(rng.uniform(0.05, 0.95), 3) for _ in range(3))


def random_material(rng: random.Random) -> Material:
    return Material(
        _colour(rng),
        _colour(rng),
        rng.choice(PATTERNS),
        frequency=rng.uniform(3.0, 12.0),
        axis=(rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.2, 1)),
        specular=rng.choice([0.0, 0.2, 0.5, 0.8]),
        shininess=rng.uniform(20.0, 120.0),
        seed=rng.randrange(1000),
    )


def _random_shape(kind: str, x: float, y: float, base: float, size: float, rng: random.Random):
    if kind == "sphere":
        return Sphere((x, y, base + size), size)
    if kind == "box":
        half = (size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0))
        return Box((x, y, base + half[2]), half, yaw_deg=rng.uniform(0, 90))
    if kind == "cylinder":
        return cylinder((x, y, base), UP, size * rng.uniform(0.4, 0.8), size * rng.uniform(1.2, 2.5))
    if kind == "cup":
        return cup((x, y, base), size * 0.8, size * 1.8, 0.04)
    if kind == "bowl":
        return bowl((x, y, base + size), size, rim_height=-0.2)
    return cylinder((x, y, base), (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0), 0.025, size * 3)  # a thin rod


def random_scene(seed: int) -> Scene:
    """A plinth plus 1 to 5 non-overlapping objects (see the module docstring)."""
    rng = random.Random(seed)
    plinth = rng.uniform(0.7, 1.0)
    objects = [SceneObject(cylinder((0, 0, FLOOR - 0.1), UP, plinth, 0.1), random_material(rng))]
    placed: list[tuple[float, float, float]] = []
    for _ in range(rng.randint(1, 5)):
        for _attempt in range(20):
            size = rng.uniform(0.12, 0.4)
            radius, angle = rng.uniform(0, max(0.0, plinth - 0.1 - size)), rng.uniform(0, 2 * math.pi)
            x, y = radius * math.cos(angle), radius * math.sin(angle)
            if all(math.hypot(x - px, y - py) > size + ps + 0.03 for px, py, ps in placed):
                kind = rng.choice(KINDS)
                lift = rng.uniform(0.05, 0.3) if kind in ("sphere", "box") and rng.random() < 0.25 else 0.0
                placed.append((x, y, size))
                objects.append(SceneObject(_random_shape(kind, x, y, FLOOR + lift, size, rng), random_material(rng)))
                break
    key = (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), rng.uniform(0.5, 0.9))
    return Scene(objects, key_direction=key, key_strength=rng.uniform(0.6, 0.95), ambient=rng.uniform(0.15, 0.3))
