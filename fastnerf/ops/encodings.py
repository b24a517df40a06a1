"""Re-exports the encoding ops (one module per op: freq_encode.py, hash_encode.py)."""

from .freq_encode import freq_encode
from .hash_encode import hash_encode

__all__ = ["freq_encode", "hash_encode"]
