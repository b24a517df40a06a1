"""Randomised scenes for multi-scene models (PixelNeRF): 2 to 5 objects of varied shape,
texture and gloss on a small plinth, every scene drawn from its own seed."""

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


def _random_shape(kind: str, x: float, y: float, size: float, rng: random.Random):
    if kind == "sphere":
        return Sphere((x, y, FLOOR + size), size)
    if kind == "box":
        return Box((x, y, FLOOR + size * 0.8), (size * 0.8, size * 0.6, size * 0.8), yaw_deg=rng.uniform(0, 90))
    if kind == "cylinder":
        return cylinder((x, y, FLOOR), UP, size * 0.6, size * 2.2)
    if kind == "cup":
        return cup((x, y, FLOOR), size * 0.8, size * 1.8, 0.04)
    if kind == "bowl":
        return bowl((x, y, FLOOR + size), size, rim_height=-0.2)
    return cylinder((x, y, FLOOR), (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0), 0.02, size * 3)  # a thin rod


def random_scene(seed: int) -> Scene:
    """A plinth plus 2 to 5 non-overlapping objects inside [-1, 1]^3."""
    rng = random.Random(seed)
    objects = [SceneObject(cylinder((0, 0, FLOOR - 0.1), UP, 0.95, 0.1), random_material(rng))]
    placed: list[tuple[float, float, float]] = []
    for _ in range(rng.randint(2, 5)):
        for _attempt in range(20):
            size = rng.uniform(0.15, 0.35)
            radius, angle = rng.uniform(0, 0.85 - size), rng.uniform(0, 2 * math.pi)
            x, y = radius * math.cos(angle), radius * math.sin(angle)
            if all(math.hypot(x - px, y - py) > size + ps + 0.03 for px, py, ps in placed):
                placed.append((x, y, size))
                objects.append(SceneObject(_random_shape(rng.choice(KINDS), x, y, size, rng), random_material(rng)))
                break
    key = (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), 0.7)
    return Scene(objects, key_direction=key)
