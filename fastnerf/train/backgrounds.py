"""Random backgrounds: how a task trains a model on RGBA data to be transparent where it is empty."""

from __future__ import annotations

import torch


def on_random_backgrounds(rgb: torch.Tensor, alpha: torch.Tensor, background, generator: torch.Generator):
    """``(rgb [N,3], colours [N,3])``: pixels ``rgb`` (composited on ``background [3]``, coverage
    ``alpha [N]``) moved onto a random colour each. A model rendered on those colours must leave
    empty space empty: on one fixed background it could paint the background into the scene."""
    colours = torch.rand(rgb.shape[0], 3, generator=generator, device=generator.device).to(rgb.device)
    return rgb + (1 - alpha)[:, None] * (colours - background), colours
