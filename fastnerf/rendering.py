"""``fastnerf.render(model, camera)``: one call that renders every model kind.

(The module is named rendering so that it never shadows the function ``fastnerf.render``.)

Ray-based models (``render_rays``, see ``fastnerf.models.base``) are rendered in batches of at
most ``chunk`` rays, generated per batch, so peak memory beyond the output image does not grow
with the resolution; a model trained on area-averaged pixels (``model.supersample = s``) is
rendered with ``s x s`` rays per pixel, averaged (``supersampling.py``). Image-based models
(``render_camera``) render a camera at once.
"""

from __future__ import annotations

import torch

from .cameras import Camera, rigid_transform_problems
from .errors import UserError
from .supersampling import average_subpixels, check_factor, subpixel_offsets, subpixel_rays

DEFAULT_CHUNK = 8192


def render(model, camera: Camera, *, backend=None, chunk: int = DEFAULT_CHUNK, background=None,
           supersample: int | None = None) -> dict:
    """Render ``model`` from ``camera`` (single or batch).

    Args:
        model: a ``fastnerf.models`` model (teacher now; students later).
        camera: a ``fastnerf.cameras.Camera``, any resolution and intrinsics, single or batch.
        backend: op backend (``None``: fastest available for the model's device).
        chunk: rays rendered at a time; bounds the memory a ray-based render needs.
        background: ``[3]`` colour (default: the model's own).
        supersample: rays per pixel side, averaged (default: the model's ``supersample``, the
            factor it was trained with; 1 renders centre rays only, ``s^2`` times fewer rays).
    Returns:
        ``dict(rgb [H,W,3] or [B,H,W,3], depth, opacity, n_samples, n_rays)`` (``depth``/``opacity``
        where the model has them; sample and ray counts for ray-based models).
    Raises:
        UserError: a camera with a singular / non-rigid pose, or a model that cannot render.
    """
    if not isinstance(camera, Camera):
        raise UserError(f"render: camera must be a fastnerf.cameras.Camera, got {type(camera).__name__}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise UserError(f"render: chunk must be a positive integer, got {chunk!r}")
    c2w = camera.c2w if camera.is_batch else camera.c2w[None]
    if not torch.isfinite(c2w).all():
        raise UserError("render: camera pose contains NaN or infinity")
    problems = rigid_transform_problems(c2w)
    if problems:
        index, reason = problems[0]
        raise UserError(f"render: camera {index} has a singular or non-rigid pose: {reason}")
    if supersample is None:
        supersample = int(getattr(model, "supersample", 1))
    try:
        check_factor(supersample, "render: supersample")
    except ValueError as error:
        raise UserError(str(error)) from None
    if hasattr(model, "render_camera") and supersample != 1:
        raise UserError(f"render: supersample applies to ray-based models; {type(model).__name__} renders whole images")
    if hasattr(model, "render_camera"):
        with torch.no_grad():
            return model.render_camera(camera, backend=backend)
    if not hasattr(model, "render_rays"):
        raise UserError(f"render: {type(model).__name__} has neither render_rays nor render_camera")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = _render_rays_model(model, camera, backend=backend, chunk=chunk, background=background,
                                     supersample=supersample)
    finally:
        model.train(was_training)
    return out


def _render_rays_model(model, camera: Camera, *, backend, chunk: int, background, supersample: int) -> dict:
    batch = camera.batch()
    device = batch.device
    height, width, n_cameras = batch.height, batch.width, len(batch)
    outputs: dict = {}
    n_samples = 0
    pixels = height * width
    rays_per_pixel = supersample * supersample
    pixel_chunk = max(1, chunk // rays_per_pixel)
    offsets = subpixel_offsets(supersample, device=device)  # [s*s, 2] stratum centres ([[0.5, 0.5]] for 1)
    for index in range(n_cameras):
        for start in range(0, pixels, pixel_chunk):
            flat = torch.arange(start, min(start + pixel_chunk, pixels), device=device)
            rows, cols = flat // width, flat % width
            camera_index = torch.full_like(flat, index)
            rays_o, rays_d = subpixel_rays(batch, camera_index, rows, cols, offsets)
            result = model.render_rays(rays_o, rays_d, backend=backend, background=background)
            n_samples += int(result.get("n_samples", 0))
            for key in ("rgb", "depth", "opacity"):
                if key not in result:
                    continue
                value = average_subpixels(result[key], supersample)
                if key not in outputs:
                    outputs[key] = torch.empty((n_cameras, pixels) + tuple(value.shape[1:]), dtype=value.dtype,
                                               device=device)
                outputs[key][index, start:start + flat.numel()] = value
    images = {key: value.view((n_cameras, height, width) + tuple(value.shape[2:])) for key, value in outputs.items()}
    if not camera.is_batch:
        images = {key: value[0] for key, value in images.items()}
    images["n_samples"] = n_samples
    images["n_rays"] = n_cameras * pixels * rays_per_pixel
    return images
