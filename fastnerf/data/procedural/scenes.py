"""The named built-in scenes. Every object lies inside [-1, 1]^3; each scene has high-frequency
textures, a glossy surface (a highlight that moves with the view), a thin structure and a
concave shape, so a blurry renderer scores visibly worse than a sharp one.

``garden`` is the unbounded one: the tabletop inside a checkered environment sphere 20 units
away (about 10x the objects' box, 5x the camera distance), which fills every view around the
objects; a model that only covers the objects' box must paint it on the box's walls."""

from __future__ import annotations

import math

from .materials import Material
from .shapes import Box, Sphere, bowl, cup, cylinder, pipe
from .tracer import Scene, SceneObject

UP = (0.0, 0.0, 1.0)


def tabletop() -> Scene:
    """A checkered plinth holding a striped glossy ball, a noise-textured cup, a checker
    crate and a fence of thin rods."""
    plinth_top = -0.45
    objects = [
        SceneObject(cylinder((0, 0, plinth_top - 0.15), UP, 1.0, 0.15),
                    Material((0.12, 0.12, 0.14), (0.92, 0.9, 0.85), "checker", frequency=6.0)),
        SceneObject(Sphere((0.38, -0.3, plinth_top + 0.4), 0.4),
                    Material((0.8, 0.12, 0.1), (0.97, 0.93, 0.8), "stripes", frequency=7.0,
                             axis=(0.3, 0.2, 1.0), specular=0.7, shininess=80.0)),
        SceneObject(cup((-0.38, 0.32, plinth_top), 0.32, 0.7, 0.045),
                    Material((0.1, 0.35, 0.7), (0.55, 0.85, 0.95), "noise", frequency=5.0, specular=0.35,
                             shininess=40.0, seed=3)),
        SceneObject(Box((-0.38, -0.42, plinth_top + 0.2), (0.2, 0.2, 0.2), yaw_deg=30.0),
                    Material((0.95, 0.75, 0.1), (0.25, 0.15, 0.05), "checker", frequency=11.0)),
    ]
    rod = Material((0.15, 0.15, 0.15), (0.85, 0.85, 0.9), "stripes", frequency=10.0, specular=0.5, shininess=60.0)
    for k in range(5):
        x, y = 0.15 + 0.15 * k, 0.75 - 0.12 * k
        objects.append(SceneObject(cylinder((x, y, plinth_top), UP, 0.018, 1.3 - 0.1 * k), rod))
    objects.append(SceneObject(cylinder((0.15, 0.75, plinth_top + 0.55), (0.15, -0.12, 0.0), 0.012,
                                        math.hypot(0.6, 0.48)), rod))
    return Scene(objects)


def bowl_scene() -> Scene:
    """A checkered spherical dish (a bowl cut below its equator) holding glossy marbles, ringed by thin posts."""
    objects = [
        SceneObject(bowl((0, 0, 0.5), 0.85, rim_height=-0.35),
                    Material((0.9, 0.88, 0.8), (0.1, 0.3, 0.25), "checker", frequency=9.0, specular=0.25,
                             shininess=30.0)),
        SceneObject(Sphere((0.15, 0.12, -0.1), 0.22), Material((0.85, 0.2, 0.5), specular=0.9, shininess=120.0)),
        SceneObject(Sphere((-0.27, -0.1, -0.08), 0.2),
                    Material((0.95, 0.8, 0.2), (0.2, 0.2, 0.6), "rings", frequency=14.0, axis=(1, 0.3, 0.2),
                             specular=0.6, shininess=60.0)),
        SceneObject(Sphere((0.08, -0.3, -0.1), 0.16),
                    Material((0.2, 0.6, 0.3), (0.9, 0.95, 0.9), "noise", frequency=7.0, specular=0.5, seed=5)),
    ]
    post = Material((0.3, 0.2, 0.1), (0.9, 0.8, 0.6), "stripes", frequency=12.0, specular=0.3)
    for k in range(8):
        angle = 2 * math.pi * k / 8
        base = (0.9 * math.cos(angle), 0.9 * math.sin(angle), -0.6)
        objects.append(SceneObject(cylinder(base, UP, 0.02, 1.5 if k % 2 == 0 else 1.2), post))
    return Scene(objects)


def lattice() -> Scene:
    """A wireframe cube of thin bars around a glossy noise ball and a hollow striped tube."""
    half = 0.7
    bar = Material((0.85, 0.85, 0.88), (0.2, 0.2, 0.25), "stripes", frequency=8.0, axis=(1, 1, 1),
                   specular=0.6, shininess=90.0)
    objects = []
    for axis in range(3):
        for a in (-half, half):
            for b in (-half, half):
                start = [a, b]
                start.insert(axis, -half)
                direction = [0.0, 0.0, 0.0]
                direction[axis] = 1.0
                objects.append(SceneObject(cylinder(start, direction, 0.022, 2 * half), bar))
    objects.append(SceneObject(Sphere((0.18, 0.15, 0.2), 0.32),
                               Material((0.1, 0.1, 0.5), (0.95, 0.6, 0.2), "noise", frequency=4.0,
                                        specular=0.8, shininess=100.0, seed=11)))
    tube_material = Material((0.95, 0.95, 0.9), (0.8, 0.1, 0.15), "stripes", frequency=9.0, axis=(1, 0, 0),
                             specular=0.3)
    objects.append(SceneObject(pipe((-0.55, -0.3, -0.3), (1.0, 0.25, 0.0), 0.2, 0.9, 0.03), tube_material))
    objects.append(SceneObject(Box((0.0, 0.0, -0.72), (0.7, 0.7, 0.02)),
                               Material((0.3, 0.3, 0.3), (0.85, 0.85, 0.85), "checker", frequency=8.0)))
    return Scene(objects)


ENVIRONMENT_RADIUS = 20.0


def garden() -> Scene:
    """The tabletop inside a far, checkered environment sphere (an unbounded scene)."""
    scene = tabletop()
    scene.environment = Material((0.25, 0.45, 0.75), (0.9, 0.82, 0.62), "checker", frequency=0.4)
    scene.environment_radius = ENVIRONMENT_RADIUS
    return scene


BUILDERS = {"tabletop": tabletop, "bowl": bowl_scene, "lattice": lattice, "garden": garden}
UNBOUNDED = ("garden",)  # scenes with an environment far outside their objects' box
