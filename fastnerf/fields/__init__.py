"""Fields: encodings as nn.Modules, MLP heads and the occupancy grid, composed by fastnerf.models."""

from .occupancy import OccupancyGrid

__all__ = ["OccupancyGrid"]
