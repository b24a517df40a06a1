"""Input encodings as nn.Modules: FrequencyEncoding (NeRF positional encoding), HashEncoding
(Instant-NGP multiresolution hash grid) and SphericalHarmonicsEncoding (view directions).

Every forward takes a leading batch of any shape, `[..., D]`, and returns `[..., out_dim]`.
"""

from .frequency import FrequencyEncoding
from .hash_grid import HashEncoding
from .spherical_harmonics import SphericalHarmonicsEncoding

__all__ = ["FrequencyEncoding", "HashEncoding", "SphericalHarmonicsEncoding"]
