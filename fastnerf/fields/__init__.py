"""Fields: encodings as nn.Modules, MLP heads and the occupancy grid, composed by fastnerf.models."""

from .encodings import FrequencyEncoding, HashEncoding, SphericalHarmonicsEncoding
from .occupancy import OccupancyGrid

__all__ = ["FrequencyEncoding", "HashEncoding", "OccupancyGrid", "SphericalHarmonicsEncoding"]
