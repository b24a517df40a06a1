"""Fields: encodings as nn.Modules, MLP heads and the occupancy grid, composed by fastnerf.models."""

from .frequency import FrequencyEncoding
from .hash_grid import HashEncoding
from .spherical_harmonics import SphericalHarmonicsEncoding
from .occupancy import OccupancyGrid

__all__ = ["FrequencyEncoding", "HashEncoding", "OccupancyGrid", "SphericalHarmonicsEncoding"]
