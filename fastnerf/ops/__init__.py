"""Public ops. Each validates its inputs, picks a backend (see fastnerf.backends) and carries
autograd. Every op takes `backend=None` as a keyword. Contracts: ARCHITECTURE.md section 3."""

from .composite import CompositeResult, composite
from .encodings import freq_encode, hash_encode
from .marching import march_rays, ray_aabb
from .project_features import project_features

__all__ = ["CompositeResult", "composite", "freq_encode", "hash_encode", "march_rays", "project_features", "ray_aabb"]
