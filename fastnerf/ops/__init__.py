"""Public ops. Each validates its inputs, picks a backend (see fastnerf.backends) and carries
autograd. Every op takes `backend=None` as a keyword. Contracts: docs/architecture.md, public contracts."""

from .baked_render import BakedRenderResult, baked_render
from .composite import CompositeResult, composite
from .freq_encode import freq_encode
from .hash_encode import hash_encode
from .march_rays import march_rays
from .project_features import project_features
from .ray_aabb import ray_aabb
from .sh_encode import sh_encode

__all__ = ["BakedRenderResult", "CompositeResult", "baked_render", "composite", "freq_encode", "hash_encode", "march_rays", "project_features", "ray_aabb", "sh_encode"]
