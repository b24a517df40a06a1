"""Public ops. Each validates its inputs, picks a backend (see fastnerf.backends) and carries
autograd. Every op takes `backend=None` as a keyword."""

from .composite import CompositeResult, composite

__all__ = ["CompositeResult", "composite"]
