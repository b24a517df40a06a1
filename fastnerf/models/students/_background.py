"""The background a student bakes into its output, and the check that refuses any other.

A student that renders whole images (``pose``, ``shared``, ``hybrid``) learned its teacher's
views on one background colour; a render on another would need the opacity it does not output.
``fastnerf.render(..., background=)`` with another colour is therefore an error that names the
colour the model was trained on, never a silently ignored argument.
"""

from __future__ import annotations

import torch

from ...errors import UserError

TOLERANCE = 1e-6


def check_background(model, background, trained) -> None:
    """``UserError`` unless ``background`` is None or the colour ``trained`` ``[3]``."""
    if background is None:
        return
    given = torch.as_tensor(background, dtype=torch.float32).detach().flatten().cpu()
    trained = torch.as_tensor(trained, dtype=torch.float32).flatten().cpu()
    if given.shape == (3,) and bool(((given - trained).abs() <= TOLERANCE).all()):
        return
    shown = given.tolist() if given.numel() <= 6 else f"a tensor of shape {tuple(given.shape)}"
    raise UserError(f"render: background={shown}: the {model.kind!r} student bakes its background into the image "
                    f"and renders only the background it was trained on, {[round(float(v), 6) for v in trained]}")
