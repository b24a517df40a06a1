"""Lens distortion as COLMAP defines it (``src/colmap/sensor/models.h``), and its inverse.

A camera maps a point in OpenCV camera space (x right, y down, z forward) to normalised image
coordinates ``(u, v) = (x / z, y / z)``, distorts them to ``(u_d, v_d)``, and then to pixels
``(fx u_d + cx, fy v_d + cy)``, the centre of the top-left pixel being (0.5, 0.5) as in fastnerf.

Models (parameters after the pinhole ones, in COLMAP's order), with ``r2 = u^2 + v^2``:

- ``SIMPLE_RADIAL`` (k): ``u_d = u (1 + k r2)``.
- ``RADIAL`` (k1, k2): ``u_d = u (1 + k1 r2 + k2 r2^2)``.
- ``OPENCV`` (k1, k2, p1, p2): radial as RADIAL, plus tangential
  ``2 p1 u v + p2 (r2 + 2 u^2)`` on u and ``2 p2 u v + p1 (r2 + 2 v^2)`` on v.
- ``OPENCV_FISHEYE`` (k1, k2, k3, k4): with ``theta = atan(sqrt(r2))``,
  ``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)``, and
  ``(u_d, v_d) = (u, v) theta_d / sqrt(r2)``.

The first three are one family: a camera stores its parameters padded with zeros to the four
``(k1, k2, p1, p2)`` of OPENCV, which give the same mapping. Undistortion (pixels -> rays)
runs a fixed number of Newton steps in float64, vectorised: a 2x2 system per point for the
OPENCV family, a 1-D one in ``theta`` for the fisheye (so rays beyond 90 degrees work).
"""

from __future__ import annotations

import torch

# The parameters each model takes, in COLMAP's order (after fx, fy, cx, cy).
PARAMETERS = {
    "SIMPLE_RADIAL": ("k1",),
    "RADIAL": ("k1", "k2"),
    "OPENCV": ("k1", "k2", "p1", "p2"),
    "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"),
}
MODELS = tuple(PARAMETERS)
FISHEYE = "OPENCV_FISHEYE"
N_PARAMS = 4  # every model's parameters padded to four
NEWTON_STEPS = 20  # quadratic convergence: far more than float64 needs for real lenses


def check_model(model: str, location: str = "distortion_model") -> str:
    if model not in PARAMETERS:
        raise ValueError(f"{location}: unknown lens model {model!r}; fastnerf applies {', '.join(MODELS)} "
                         "(or none, for a pinhole camera)")
    return model


def camera_lens(model, params, batch_shape: tuple[int, ...]) -> tuple[str | None, torch.Tensor | None]:
    """A ``Camera``'s ``(model, params [*batch, 4])`` from its arguments, or ``(None, None)`` for a pinhole camera."""
    if model is None:
        if params is not None:
            raise ValueError("Camera: distortion parameters given without a distortion_model")
        return None, None
    check_model(model, "Camera: distortion_model")
    if params is None:
        raise ValueError(f"Camera: distortion_model {model!r} needs its parameters ({', '.join(PARAMETERS[model])})")
    params = torch.as_tensor(params, dtype=torch.float32)
    if params.ndim == 1 and batch_shape:
        params = params.expand(batch_shape + params.shape).clone()
    if params.ndim != len(batch_shape) + 1 or tuple(params.shape[:-1]) != batch_shape:
        raise ValueError(f"Camera: distortion must have shape {list(batch_shape) + ['K']} to match c2w, got {list(params.shape)}")
    params = padded(model, params)
    if not torch.isfinite(params).all():
        raise ValueError("Camera: distortion has non-finite values")
    if model != FISHEYE and not params.any():
        return None, None  # a perspective lens without distortion is a pinhole camera
    return model, params


def padded(model: str, params: torch.Tensor) -> torch.Tensor:
    """``params [..., len(PARAMETERS[model])]`` -> ``[..., 4]`` (the OPENCV family padded with zeros)."""
    count = len(PARAMETERS[check_model(model)])
    if params.shape[-1] == N_PARAMS:
        return params
    if params.shape[-1] != count:
        raise ValueError(f"distortion: {model} takes {count} parameters ({', '.join(PARAMETERS[model])}) "
                         f"or 4 padded with zeros, got {params.shape[-1]}")
    return torch.cat([params, params.new_zeros(params.shape[:-1] + (N_PARAMS - count,))], dim=-1)


def common_model(models: list[str]) -> str:
    """The one model a batch of cameras with ``models`` can share (OPENCV covers its family)."""
    unique = set(models)
    if len(unique) == 1:
        return models[0]
    if FISHEYE in unique:
        raise ValueError(f"cameras with lens models {sorted(unique)} cannot share a batch: a fisheye "
                         "and a perspective lens have no common model")
    return "OPENCV"


def batch_lens(lenses: list) -> dict:
    """``Camera`` keyword arguments for a batch of cameras with ``lenses``, each ``(model, params)``
    or ``(None, ...)`` for a pinhole one: one model for the batch, zeros for the pinhole cameras."""
    models = [model for model, _ in lenses if model is not None]
    if not models:
        return {}
    model = common_model(models)
    if model == FISHEYE and len(models) < len(lenses):
        raise ValueError("a fisheye and a pinhole camera cannot share a batch")
    params = [padded(name, torch.as_tensor(p, dtype=torch.float32)) if name else torch.zeros(N_PARAMS)
              for name, p in lenses]
    return {"distortion_model": model, "distortion": torch.stack(params)}


def distort(model: str, params: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised ``(u, v)`` -> distorted ``(u_d, v_d)``; ``params [..., 4]`` broadcasts against ``u``."""
    k = params.unbind(-1)
    if model == FISHEYE:
        radius = torch.sqrt(u * u + v * v)
        theta = torch.atan(radius)
        theta2 = theta * theta
        theta_d = theta * (1 + theta2 * (k[0] + theta2 * (k[1] + theta2 * (k[2] + theta2 * k[3]))))
        scale = torch.where(radius > 1e-12, theta_d / radius.clamp(min=1e-12), torch.ones_like(radius))
        return u * scale, v * scale
    k1, k2, p1, p2 = k
    r2 = u * u + v * v
    radial = 1 + r2 * (k1 + k2 * r2)
    return (u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u),
            v * radial + 2 * p2 * u * v + p1 * (r2 + 2 * v * v))


def _undistort_opencv(params, u_d, v_d):
    k1, k2, p1, p2 = params.unbind(-1)
    u, v = u_d.clone(), v_d.clone()
    for _ in range(NEWTON_STEPS):
        r2 = u * u + v * v
        radial = 1 + r2 * (k1 + k2 * r2)
        d_radial = k1 + 2 * k2 * r2  # d radial / d r2
        f_u = u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u) - u_d
        f_v = v * radial + 2 * p2 * u * v + p1 * (r2 + 2 * v * v) - v_d
        j_uu = radial + 2 * u * u * d_radial + 2 * p1 * v + 6 * p2 * u
        j_uv = 2 * u * v * d_radial + 2 * p1 * u + 2 * p2 * v
        j_vu = 2 * u * v * d_radial + 2 * p2 * v + 2 * p1 * u
        j_vv = radial + 2 * v * v * d_radial + 2 * p2 * u + 6 * p1 * v
        det = j_uu * j_vv - j_uv * j_vu
        det = torch.where(det.abs() > 1e-12, det, torch.full_like(det, 1e-12))
        u = u - (j_vv * f_u - j_uv * f_v) / det
        v = v - (j_uu * f_v - j_vu * f_u) / det
    return u, v


def _fisheye_angle(params, radius_d):
    """``theta`` with ``theta (1 + k1 theta^2 + ...) = radius_d`` (Newton from ``theta = radius_d``)."""
    k1, k2, k3, k4 = params.unbind(-1)
    theta = radius_d.clone()
    for _ in range(NEWTON_STEPS):
        t2 = theta * theta
        value = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - radius_d
        slope = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
        theta = theta - value / torch.where(slope.abs() > 1e-12, slope, torch.full_like(slope, 1e-12))
    return theta


def undistorted_directions(model: str, params: torch.Tensor, u_d: torch.Tensor, v_d: torch.Tensor) -> torch.Tensor:
    """Distorted normalised ``(u_d, v_d)`` -> OpenGL camera-space directions ``[..., 3]`` (not unit).

    ``params [..., 4]`` broadcasts against ``u_d``; all float64 for the Newton steps.
    """
    if model == FISHEYE:
        radius_d = torch.sqrt(u_d * u_d + v_d * v_d)
        theta = _fisheye_angle(params, radius_d)
        # sin(theta) / radius_d -> 1 as the radius goes to 0 (theta ~ radius_d there).
        scale = torch.where(radius_d > 1e-12, torch.sin(theta) / radius_d.clamp(min=1e-12), torch.ones_like(radius_d))
        return torch.stack([u_d * scale, -v_d * scale, -torch.cos(theta)], dim=-1)
    u, v = _undistort_opencv(params, u_d, v_d)
    return torch.stack([u, -v, -torch.ones_like(u)], dim=-1)
