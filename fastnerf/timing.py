"""``latency_ms``: how every renderer is timed, the same way for every model kind.

The protocol (the report's): the mean wall time of ``fastnerf.render`` on one camera at batch 1,
with the model's default settings, after warm-up renders, the device synchronized before each
clock read. 100 timed renders after 5 warm-ups; a renderer slower than a second (its first
warm-up says so) gets 1 warm-up and 5 timed renders, so vanilla NeRF is measured in minutes,
not hours.
"""

from __future__ import annotations

import time

from .devices import synchronize
from .rendering import model_device, render

SLOW_SECONDS = 1.0


def latency_ms(model, camera, *, repeats: int = 100, warmup: int = 5, slow_repeats: int = 5, **render_options) -> dict:
    """``{"latency_ms", "renders", "warmup"}`` of ``render(model, camera, **render_options)``.

    ``camera`` must be a single camera (batch 1); ``render_options`` are ``fastnerf.render``'s.
    """
    if camera.is_batch:
        if len(camera) != 1:
            raise ValueError(f"latency_ms: time one camera (batch 1), got a batch of {len(camera)}")
        camera = camera[0]
    if repeats < 1 or warmup < 1:
        raise ValueError(f"latency_ms: repeats and warmup must be >= 1, got {repeats}, {warmup}")
    device = model_device(model)
    camera = camera.to(device)
    first = _timed(model, camera, device, render_options)
    if first > SLOW_SECONDS:
        warmup, repeats = 1, min(repeats, slow_repeats)
    for _ in range(warmup - 1):
        render(model, camera, **render_options)
    total = sum(_timed(model, camera, device, render_options) for _ in range(repeats))
    return {"latency_ms": 1e3 * total / repeats, "renders": repeats, "warmup": warmup}


def _timed(model, camera, device, options) -> float:
    synchronize(device)
    start = time.perf_counter()
    render(model, camera, **options)
    synchronize(device)
    return time.perf_counter() - start
