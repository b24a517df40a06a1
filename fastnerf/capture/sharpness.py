"""How sharp a frame is: the variance of its Laplacian (motion blur and defocus remove the fine
detail the Laplacian responds to, so a blurred frame scores far lower than a sharp one of the
same view)."""

from __future__ import annotations

import numpy as np


def sharpness(pixels: np.ndarray) -> float:
    """``pixels [H,W,3]`` or ``[H,W]`` (any range) -> variance of the 4-neighbour Laplacian of the grey image."""
    grey = np.asarray(pixels, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey[..., :3].mean(-1)
    if grey.ndim != 2 or min(grey.shape) < 3:
        raise ValueError(f"sharpness: expected an image of at least 3x3 pixels, got shape {list(np.shape(pixels))}")
    laplacian = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1])
    return float(laplacian.var())
