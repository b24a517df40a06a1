"""Checkpoints for every model kind: tensors and plain values only, a format version, written
atomically (``path.tmp`` then ``os.replace``) and read with ``torch.load(weights_only=True)``.

Layout: ``{"format_version", "model_kind", "model_config", "model", "optimizer", "step",
"rng", "task", "train_args", "dataset", "extra"}`` and, optionally, ``"averaged"``. ``task`` names the
training task (``fastnerf.train.tasks``) and ``train_args`` rebuild it; ``extra["engine"]`` holds the
seed, the budget (with the step count a minutes budget became), the world size and device. ``model`` is the
``state_dict`` training continues from (occupancy-grid buffers included); ``averaged`` holds the
moving average of the parameters (``ParameterAverage.state_dict()``) and, under ``buffers``, the
buffers a model derives from them (its occupancy grid, rebuilt from the averaged weights), which
models are rebuilt with for evaluation and rendering; ``rng`` maps names to generator states (uint8 tensors).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import UserError

FORMAT_VERSION = 1
FILE_NAME = "checkpoint.pt"


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, not a fastnerf checkpoint, or of another format version."""


def checkpoint_path(path) -> Path:
    """``path`` itself if it is a file, else ``path / checkpoint.pt`` (a run folder)."""
    path = Path(path)
    return path / FILE_NAME if path.is_dir() or not path.suffix else path


def save_checkpoint(path, *, model, optimizer=None, step: int = 0, rng: dict | None = None,
                    train_args: dict | None = None, dataset: dict | None = None, extra: dict | None = None,
                    averaged: dict | None = None, task: str | None = None) -> Path:
    """Write a checkpoint of ``model`` (any registered kind) atomically; returns the file path."""
    path = checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_kind": model.kind,
        "model_config": model.config(),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "step": int(step),
        "rng": dict(rng or {}),
        "task": task,
        "train_args": dict(train_args or {}),
        "dataset": dict(dataset or {}),
        "extra": dict(extra or {}),
    }
    if averaged is not None:
        payload["averaged"] = averaged
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, not a fastnerf checkpoint,
            or of another format version.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint found (train one with `fastnerf train teacher`)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {error}") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path}: not a fastnerf checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload['format_version']!r}, but this fastnerf reads "
            f"version {FORMAT_VERSION}; retrain, or use the fastnerf release that wrote it"
        )
    missing = [key for key in ("model_kind", "model_config", "model", "step") if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


def load_run(run, *, device=None):
    """``(model, checkpoint)`` of any model kind from a run folder or checkpoint file: the model
    with its averaged weights, in eval mode, on ``device`` (default: cuda when available, else cpu; a checkpoint loads on any device)."""
    from .devices import resolve_device

    device = resolve_device(device)
    checkpoint = load_checkpoint(run, map_location=device)
    return model_from_checkpoint(checkpoint, device=device), checkpoint


def model_from_checkpoint(checkpoint, *, averaged: bool = True, device=None) -> torch.nn.Module:
    """Rebuild the model a checkpoint (a dict from ``load_checkpoint``, or a path) holds, in eval
    mode, on ``device`` (default: where the checkpoint's tensors were mapped): with the averaged
    parameters where the checkpoint has them (``averaged=False``: the raw weights training
    resumes from)."""
    from ..models import build_model

    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint, map_location=device or "cpu")
    model = build_model(checkpoint["model_kind"], **checkpoint["model_config"])
    load_model_state(model, checkpoint["model"], checkpoint["model_kind"])
    if averaged and checkpoint.get("averaged"):
        _load_averaged(model, checkpoint["averaged"])
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_model_state(model, state: dict, kind: str) -> None:
    """``model.load_state_dict(state)``, with keys of older releases renamed by the model's own
    ``upgrade_state_dict`` where it has one; a mismatch is a CheckpointError."""
    try:
        model.load_state_dict(upgraded_state(model, state))
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint weights do not fit a {kind!r} model: {error}") from None


def upgraded_state(model, state: dict) -> dict:
    """``state`` (parameter or state-dict keys) with older releases' names renamed by the model."""
    upgrade = getattr(model, "upgrade_state_dict", None)
    return upgrade(dict(state)) if upgrade is not None else state


def _load_averaged(model, averaged) -> None:
    params = dict(model.named_parameters())
    values = averaged.get("params") if isinstance(averaged, dict) else None
    if isinstance(values, dict):
        values = upgraded_state(model, values)
    if not isinstance(values, dict) or set(values) - set(params):
        raise CheckpointError("checkpoint's averaged weights do not fit its model")
    with torch.no_grad():
        for name, value in values.items():
            if value.shape != params[name].shape:
                raise CheckpointError(f"checkpoint's averaged {name} has shape {tuple(value.shape)}, "
                                      f"the model's is {tuple(params[name].shape)}")
            params[name].copy_(value)
    load_buffers(model, averaged.get("buffers") or {})


def load_buffers(model, buffers: dict) -> None:
    """Copy ``{state-dict name: tensor}`` into ``model``'s buffers of those names (shapes checked)."""
    own = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in buffers.items():
            if name not in own or own[name].shape != value.shape:
                raise CheckpointError(f"checkpoint's averaged buffer {name} does not fit its model")
            own[name].copy_(value)
