"""``fastnerf.render(model, camera)``: one call that renders every model kind.

(The module is named rendering so that it never shadows the function ``fastnerf.render``.)

One protocol (``fastnerf.models.base``), dispatched on by its ``Protocol`` classes: an
``ImageModel`` (``render_camera``: the students) gets the camera, the background and the chunk
size; a ``RayModel`` (``render_rays``: the teacher, image-conditioned fields) is rendered here
in batches of at most ``chunk`` rays, generated per batch, so peak memory beyond the image does not
grow with the resolution; a model trained on area-averaged pixels (``model.supersample = s``) is
rendered with ``s x s`` rays per pixel, averaged (``supersampling.py``). Either way the model is
put in eval mode under no_grad for the call, and the camera moves to the model's device.
``views=(images, cameras)`` conditions an image-based field: ``model.encode_views`` runs once,
its result goes to every ``render_rays`` call as ``views=``. A kind's own options
(``render(model, camera, views=..., mode="dense")`` for an image-conditioned field's sampling)
pass through to its entry point; one
the entry point does not take is a ``UserError`` that lists those it does.
"""

from __future__ import annotations

import inspect

import torch

from .cameras import Camera, rigid_transform_problems
from .errors import UserError
from .models.base import ConditionedModel, ImageModel, rendering_protocol
from .supersampling import average_subpixels, check_factor, subpixel_offsets, subpixel_rays

DEFAULT_CHUNK = 8192


def render(model, camera: Camera, *, backend=None, chunk: int = DEFAULT_CHUNK, background=None, views=None,
           supersample: int | None = None, dense_samples: int | None = None, **options) -> dict:
    """Render ``model`` from ``camera`` (single or batch).

    Args:
        model: any ``fastnerf.models`` model (every registered kind).
        camera: a ``fastnerf.cameras.Camera``, any resolution and intrinsics, single or batch.
        backend: op backend (``None``: fastest available for the model's device).
        chunk: rays rendered at a time; bounds the memory a render needs.
        background: ``[3]`` colour (default: the model's own).
        views: ``(images [V,H,W,3], cameras)`` source views for an image-conditioned model (or
            what its ``encode_views`` returned for them, to encode once for many renders).
        supersample: rays per pixel side, averaged (default: the model's ``supersample``, the
            factor it was trained with; 1 renders centre rays only, ``s^2`` times fewer rays).
        dense_samples: render as the original volume renderer does (Mildenhall et al. 2020): this
            many evenly spaced samples on every ray, no occupancy grid, no early termination (256 =
            its 64 coarse + 192 fine).
        options: the kind's own options, passed to its ``render_rays`` / ``render_camera``
            (e.g. an image-conditioned field's ``mode="fast"|"dense"``).
    Returns:
        ``dict(rgb [H,W,3] or [B,H,W,3], depth, opacity, n_samples, n_rays)`` (``depth``/``opacity``
        where the model has them; sample and ray counts for ray-based models).
    Raises:
        UserError: a camera with a singular / non-rigid camera-to-world matrix, an option the model
            does not take, or a camera the model cannot render (the message says what it can).
    Example:
        >>> import torch, fastnerf
        >>> from fastnerf.cameras import orbit_path
        >>> class Grey(torch.nn.Module):                    # any RayModel: rays in, colours out
        ...     def render_rays(self, rays_o, rays_d, *, backend=None, background=None):
        ...         return {"rgb": torch.full_like(rays_o, 0.5), "opacity": torch.ones(rays_o.shape[0])}
        >>> cameras = orbit_path(2, 4.0, 30.0, 8, 6, 0.8)           # two 8x6 cameras
        >>> out = fastnerf.render(Grey(), cameras, chunk=10)        # at most 10 rays a call
        >>> tuple(out["rgb"].shape), tuple(out["opacity"].shape), float(out["rgb"].mean())
        ((2, 6, 8, 3), (2, 6, 8), 0.5)
        >>> fastnerf.render(Grey(), cameras[0], mode="fast")
        Traceback (most recent call last):
        ...
        fastnerf.errors.UserError: render: Grey takes no option 'mode'; its options: none
    """
    if not isinstance(camera, Camera):
        raise UserError(f"render: camera must be a fastnerf.cameras.Camera, got {type(camera).__name__}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise UserError(f"render: chunk must be a positive integer, got {chunk!r}")
    c2w = camera.c2w if camera.is_batch else camera.c2w[None]
    if not torch.isfinite(c2w).all():
        raise UserError("render: camera-to-world matrix contains NaN or infinity")
    problems = rigid_transform_problems(c2w)
    if problems:
        index, reason = problems[0]
        raise UserError(f"render: camera {index} has a singular or non-rigid camera-to-world matrix: {reason}")
    if dense_samples is not None and (isinstance(dense_samples, bool) or not isinstance(dense_samples, int)
                                      or dense_samples < 1):
        raise UserError(f"render: dense_samples must be a positive integer, got {dense_samples!r}")
    if supersample is None:
        supersample = int(getattr(model, "supersample", 1))
    try:
        check_factor(supersample, "render: supersample")
    except ValueError as error:
        raise UserError(str(error)) from None
    camera = camera.to(model_device(model))
    protocol = rendering_protocol(model)
    if protocol is None:
        raise UserError(f"render: {type(model).__name__} follows no rendering protocol: it needs render_camera "
                        "or render_rays (fastnerf.models.base)")
    if protocol is ImageModel:
        given = [name for name, set_ in (("supersample", supersample != 1), ("dense_samples", dense_samples is not None),
                                         ("views", views is not None)) if set_]
        if given:
            raise UserError(f"render: {given[0]} applies to ray-based models; {type(model).__name__} renders whole images")
        _check_options(model, model.render_camera, options)
    else:
        if dense_samples is not None:
            options["dense_samples"] = dense_samples
        _check_options(model, model.render_rays, options)
        if views is None and isinstance(model, ConditionedModel) and model.needs_views:
            raise UserError(f"render: {type(model).__name__} renders from source views: pass "
                            "views=(images [V,H,W,3], cameras)")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if protocol is ImageModel:
                return model.render_camera(camera, backend=backend, background=background, chunk=chunk, **options)
            if views is not None:
                options["views"] = _encoded_views(model, views)
            return _render_rays_model(model, camera, backend=backend, chunk=chunk, background=background,
                                      supersample=supersample, options=options)
    finally:
        model.train(was_training)


RESERVED = {"self", "rays_o", "rays_d", "camera", "backend", "background", "chunk", "views", "generator"}


def _check_options(model, entry_point, options: dict) -> None:
    """Every option is a keyword ``entry_point`` takes, or a UserError listing those it does."""
    if not options:
        return
    parameters = inspect.signature(entry_point).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        taken = sorted(set(parameters) - RESERVED)
        raise UserError(f"render: {type(model).__name__} takes no option {unknown[0]!r}; its options: "
                        f"{', '.join(taken) or 'none'}")


def model_device(model) -> torch.device:
    """Where ``model``'s tensors live (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _encoded_views(model, views):
    if not isinstance(model, ConditionedModel):
        raise UserError(f"render: views apply to image-conditioned models; {type(model).__name__} takes none")
    if isinstance(views, dict):  # already encoded (model.encode_views): many renders, one encoding
        return views
    if not isinstance(views, (tuple, list)) or len(views) != 2:
        raise UserError("render: views must be (images [V,H,W,3], cameras)")
    images, cameras = views
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"render: views images must be a [V,H,W,3] tensor, got "
                        f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not isinstance(cameras, Camera):
        raise UserError(f"render: views cameras must be a fastnerf Camera batch, got {type(cameras).__name__}")
    cameras = cameras.batch()
    if len(cameras) != images.shape[0] or (cameras.height, cameras.width) != tuple(images.shape[1:3]):
        raise UserError(f"render: views has {images.shape[0]} images of {images.shape[2]}x{images.shape[1]} but "
                        f"{len(cameras)} cameras of {cameras.width}x{cameras.height}")
    device = model_device(model)
    return model.encode_views(images.to(device), cameras.to(device))


def _render_rays_model(model, camera: Camera, *, backend, chunk: int, background, supersample: int,
                       options: dict) -> dict:
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
            result = model.render_rays(rays_o, rays_d, backend=backend, background=background, **options)
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
