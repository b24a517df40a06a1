"""Surface appearance: a textured albedo plus a Blinn-Phong specular lobe."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import textures


@dataclass
class Material:
    """Two colours blended by ``pattern``; ``specular`` (0 = matte) with ``shininess`` exponent.

    ``frequency`` is cells / stripes per world unit; ``axis`` orients stripes and rings; ``seed``
    varies noise and the pattern phase.
    """

    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pattern: str = "solid"
    frequency: float = 4.0
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    specular: float = 0.0
    shininess: float = 32.0
    seed: int = 0

    def __post_init__(self):
        if self.pattern not in textures.PATTERNS:
            raise ValueError(f"Material: unknown pattern {self.pattern!r}; use one of {', '.join(textures.PATTERNS)}")

    def albedo(self, points: torch.Tensor) -> torch.Tensor:
        """``points [R,3]`` -> albedo ``[R,3]`` in [0, 1]."""
        colour_a = torch.tensor(self.colour_a, dtype=torch.float32)
        colour_b = torch.tensor(self.colour_b, dtype=torch.float32)
        if self.pattern == "solid":
            return colour_a.expand(points.shape[0], 3)
        phase = torch.tensor([0.137, 0.291, 0.413]) + 0.1 * self.seed
        axis = torch.tensor(self.axis, dtype=torch.float32)
        axis = axis / axis.norm()
        if self.pattern == "checker":
            blend = textures.checker(points, self.frequency, phase)
        elif self.pattern == "stripes":
            blend = textures.stripes(points, self.frequency, axis, phase)
        elif self.pattern == "rings":
            blend = textures.rings(points, self.frequency, axis, phase)
        else:  # noise, sharpened into blotches with soft edges
            noise = textures.value_noise(points, self.frequency, self.seed)
            blend = ((noise - 0.5) * 5 + 0.5).clamp(0, 1)
        return colour_a + blend[:, None] * (colour_b - colour_a)
