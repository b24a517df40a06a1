"""Compare recovered cameras with known ones: the similarity that best maps one set of camera
centres onto the other (Umeyama 1991, least squares), and the error left after it, in units of
the rig's size (the known centres' mean distance from their centroid)."""

from __future__ import annotations

import numpy as np


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(scale, rotation [3,3], translation [3])`` minimising ``sum |scale R source_i + t - target_i|^2``
    over points ``source, target [N,3]`` (N >= 3, not all on one line)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 3:
        raise ValueError(f"umeyama: expected two [N,3] point sets with N >= 3, got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1  # a reflection would fit better; take the best rotation instead
    rotation = u @ sign @ vt
    variance = (source_centred**2).sum() / len(source)
    if variance <= 0:
        raise ValueError("umeyama: the source points all coincide")
    scale = float(np.trace(np.diag(singular) @ sign) / variance)
    return scale, rotation, target_mean - scale * rotation @ source_mean


def camera_centre_error(recovered: np.ndarray, known: np.ndarray) -> dict:
    """Camera centres ``recovered, known [N,3]`` -> ``{"mean", "max"}`` distance after the best
    similarity, as fractions of the rig size, plus ``"rig_size"`` (in the known units)."""
    scale, rotation, translation = umeyama(recovered, known)
    aligned = recovered @ (scale * rotation).T + translation
    distances = np.linalg.norm(aligned - known, axis=1)
    rig_size = float(np.linalg.norm(known - known.mean(0), axis=1).mean())
    return {"mean": float(distances.mean()) / rig_size, "max": float(distances.max()) / rig_size, "rig_size": rig_size}
