"""From COLMAP's frame (arbitrary rotation, origin and scale) to the scene frame fastnerf's
built-in scenes use: +Z up, the scene's box centred at the origin, its longest half-side 1.

- up: the mean of the cameras' up vectors (people hold cameras level, so their mean up is the
  world's up however they walk around), turned onto +Z;
- box: per axis the ``BOX_PERCENTILES`` of the sparse points (a few stray or far background
  points do not stretch it), centred at the origin and scaled so its longest half-side is 1.

Poses come out OpenGL camera-to-world (the camera looks along -Z, +Y up): COLMAP's
``cam_from_world`` is OpenCV (looks along +Z, +Y down), so the camera's y and z axes flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.colmap import BOX_PERCENTILES, opengl_c2w  # the same box rule and axes as a COLMAP model read as data
from ..errors import UserError


@dataclass
class Oriented:
    c2w: np.ndarray  # [N,4,4] OpenGL camera-to-world in the scene frame
    aabb: np.ndarray  # [6] (xmin, ymin, zmin, xmax, ymax, zmax) in the scene frame
    colmap_to_scene: np.ndarray  # [4,4] similarity (scale * rotation, translation) applied to COLMAP's frame


def rotation_onto(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation ``[3,3]`` turning unit vector ``source`` onto unit vector ``target`` the short way."""
    axis = np.cross(source, target)
    cosine = float(np.dot(source, target))
    if np.linalg.norm(axis) < 1e-12:
        if cosine > 0:
            return np.eye(3)
        helper = np.array([1.0, 0.0, 0.0]) if abs(source[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(source, helper)
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)  # half a turn about an axis normal to source
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + cross + cross @ cross / (1 + cosine)


def orient(cam_from_world: np.ndarray, points: np.ndarray) -> Oriented:
    """Cameras ``cam_from_world [N,3,4]`` and sparse ``points [P,3]`` (COLMAP) -> the scene frame."""
    c2w = opengl_c2w(cam_from_world)
    up = c2w[:, :3, 1].mean(0)
    if np.linalg.norm(up) < 1e-6:
        raise UserError("the cameras' up vectors cancel out (photos taken at every roll angle); cannot tell up")
    rotation = rotation_onto(up / np.linalg.norm(up), np.array([0.0, 0.0, 1.0]))
    if len(points) < 4:
        raise UserError(f"the reconstruction has {len(points)} sparse points; too few to place the scene")
    turned = points @ rotation.T
    low, high = np.percentile(turned, BOX_PERCENTILES, axis=0)
    centre = (low + high) / 2
    half_side = float((high - low).max()) / 2
    if half_side <= 0:
        raise UserError("the sparse points all coincide; cannot size the scene")
    scale = 1.0 / half_side
    similarity = np.eye(4)
    similarity[:3, :3] = scale * rotation
    similarity[:3, 3] = -scale * centre
    scene_c2w = c2w.copy()
    scene_c2w[:, :3, :3] = rotation @ c2w[:, :3, :3]
    scene_c2w[:, :3, 3] = (c2w[:, :3, 3] @ rotation.T - centre) * scale
    aabb = np.concatenate([(low - centre) * scale, (high - centre) * scale])
    return Oriented(scene_c2w, aabb, similarity)
