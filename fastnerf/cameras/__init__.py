"""Pinhole cameras and the rays they cast.

Convention (docs/architecture.md, public contracts, NeRF-synthetic / OpenGL): ``c2w`` is camera-to-world;
in camera space the camera looks along -Z with +Y up and +X right. Pixel (i = column,
j = row) casts its ray through its centre (i + 0.5, j + 0.5), whose camera-space direction is
``((i + 0.5 - cx) / fx, -(j + 0.5 - cy) / fy, -1)``.

A ``Camera`` is either single (``c2w [4,4]``, intrinsics 0-d) or a batch (``c2w [B,4,4]``,
intrinsics ``[B]``); all cameras of a batch share ``width`` and ``height``.

Lens distortion (``fastnerf.distortion``: COLMAP's SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE):
``distortion_model`` is shared by a batch, ``distortion`` (``[4]`` / ``[B,4]``) is per camera. The
pixel coordinates are then undistorted before they become directions; a camera without
distortion casts exactly the pinhole rays above.

Modules: ``camera.py`` (``Camera``: batches, lens, rays), ``checks.py`` (rigid poses, a model's fixed
intrinsics), ``poses.py`` (``look_at``, ``orbit_path``, ``mean_pose``, ``spiral_path``); every name
below is imported from ``fastnerf.cameras``.
"""

from .camera import Camera
from .checks import INTRINSICS_TOLERANCE, RIGID_TOLERANCE, check_fixed_intrinsics, rigid_transform_problems
from .poses import look_at, mean_pose, orbit_path, spiral_path

__all__ = ["Camera", "INTRINSICS_TOLERANCE", "RIGID_TOLERANCE", "check_fixed_intrinsics", "look_at", "mean_pose",
           "orbit_path", "rigid_transform_problems", "spiral_path"]
