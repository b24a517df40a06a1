"""Re-exports the ray-marching ops (one module per op: ray_aabb.py, march_rays.py)."""

from .march_rays import march_rays
from .ray_aabb import ray_aabb

__all__ = ["march_rays", "ray_aabb"]
