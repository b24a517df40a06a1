"""Solid (3-D) textures: albedo as a function of the world point, so no UV maps are needed.

Each pattern returns a blend weight ``[R]`` in [0, 1] between a material's two colours.
"""

from __future__ import annotations

import torch

PATTERNS = ("solid", "checker", "stripes", "noise", "rings")


def checker(points: torch.Tensor, frequency: float, phase: torch.Tensor) -> torch.Tensor:
    """3-D checkerboard of cells ``1 / frequency`` wide (``points [R,3]``)."""
    cells = torch.floor(points * frequency + phase).long().sum(-1)
    return (cells % 2).float()


def stripes(points: torch.Tensor, frequency: float, axis: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Hard-edged stripes across unit ``axis [3]``, ``frequency`` stripe pairs per unit length."""
    coordinate = points @ axis * frequency + phase[0]
    return (torch.frac(coordinate - torch.floor(coordinate)) < 0.5).float()


def rings(points: torch.Tensor, frequency: float, axis: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Concentric rings about a line through the origin along ``axis`` (wood-grain like)."""
    radial = points - (points @ axis)[:, None] * axis
    coordinate = radial.norm(dim=-1) * frequency + phase[0]
    return (torch.frac(coordinate - torch.floor(coordinate)) < 0.5).float()


def _lattice_hash(cells: torch.Tensor, seed: int) -> torch.Tensor:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point ``cells [...,3]``."""
    x, y, z = cells.unbind(-1)
    value = (x * 73856093) ^ (y * 19349663) ^ (z * 83492791) ^ (seed * 2654435761)
    value = (value ^ (value >> 13)) * 1274126177
    value = value ^ (value >> 16)
    return (value & 0xFFFFFF).float() / float(0x1000000)


def value_noise(points: torch.Tensor, frequency: float, seed: int, octaves: int = 4) -> torch.Tensor:
    """Fractal value noise in [0, 1] (trilinear lattice noise summed over octaves)."""
    total = torch.zeros(points.shape[0])
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        scaled = points * (frequency * 2**octave)
        base = torch.floor(scaled)
        fraction = scaled - base
        smooth = fraction * fraction * (3 - 2 * fraction)  # [R,3]
        base = base.long()
        octave_value = torch.zeros(points.shape[0])
        for corner in range(8):
            offset = torch.tensor([(corner >> 0) & 1, (corner >> 1) & 1, (corner >> 2) & 1])
            weight = torch.where(offset.bool(), smooth, 1 - smooth).prod(-1)
            octave_value += weight * _lattice_hash(base + offset, seed + octave)
        total += amplitude * octave_value
        norm += amplitude
        amplitude *= 0.5
    return total / norm
