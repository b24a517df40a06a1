"""Students: renderers distilled from the NeRF teacher that skip volume rendering at inference."""

from .lightfield import LightField  # noqa: F401  (registers "lightfield")
