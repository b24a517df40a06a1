"""``train_teacher``: fit the NeRF teacher to a posed-image dataset.

One step: draw pixels over all training images, ``s x s`` jittered rays through each (the model's
``supersample``) -> ``model.render_rays(train=True)`` (ray_aabb -> march_rays through the
occupancy grid -> field -> composite) -> MSE of the pixel means -> Adam. The number of rays per
step adapts so each step evaluates about ``target_samples`` samples. The occupancy grid is
refreshed every ``grid_every`` steps. RGBA datasets train on a random background per pixel.
Evaluation, the returned model and ``load_run`` use a moving average of the weights (``ema.py``).
Everything random comes from one generator whose state is checkpointed, so ``resume=True``
continues exactly as if training had never stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..supersampling import average_subpixels
from .allocator import keep_freed_memory
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .denormals import with_flushed_denormals
from .ema import ParameterAverage
from .loop import TrainingDiverged, evaluate, lr_factor, make_adam, psnr_from_mse, set_lr

EMA_DECAY = 0.998  # the averaged weights: tabletop 31.76 -> 31.88 dB (0.99: 31.85, 0.995: 31.87)
# Rays per pixel side (supersampling.py), from centre_fraction of the budget on. hash, 4800 steps:
# tabletop 31.88 -> 32.83 dB, bowl 30.96 -> 32.98, lattice 31.13 -> 33.19. frequency: 1; that
# model is far from converged after minutes, where aliasing is not yet what limits it.
SUPERSAMPLE = {"hash": 2, "frequency": 1}
DEFAULT_LR = {"hash": 2e-2, "frequency": 2e-3}  # hash at 100x100: 1e-2 31.36 dB, 2e-2 31.52, 4e-2 30.93


# Detail the images can teach scales with their resolution: the finest hash level and the
# marching step follow the image size: 1536 and 1024 steps per diagonal at 800 pixels (Instant-NGP:
# 2048 and 1024), 192 and 128 at 100 pixels. Finer levels or steps than the pixels
# resolve only cost time and generalise worse: at 100x100 and the same samples per step, n_max
# 1024 -> 256 gained 0.4-0.6 dB, 256 -> 192 0.16-0.24 dB (128: 0.08 less than 192), and 512 ->
# 128 steps per diagonal (more rays per step) 0.5 dB.
HASH_RES_PER_PIXEL = 1.92
STEPS_PER_PIXEL = 1.28


def resolution_defaults(width: int, height: int) -> dict:
    """``hash_max_res`` and ``steps_per_diagonal`` for training images of ``width x height``."""
    pixels = max(int(width), int(height))
    return {"hash_max_res": int(min(2048, max(64, round(HASH_RES_PER_PIXEL * pixels)))),
            "steps_per_diagonal": int(min(1024, max(128, round(STEPS_PER_PIXEL * pixels))))}


def teacher_config_for(dataset, encoding: str = "hash", **overrides) -> dict:
    """NeRF config for ``dataset``: NDC for forward-facing captures, else its aabb (padded 5%);
    the finest hash level and the marching step follow the image size (``resolution_defaults``);
    pixels are area averages of ``SUPERSAMPLE[encoding]``^2 rays."""
    config = {"encoding": encoding, "background": dataset.background.tolist(),
              "supersample": SUPERSAMPLE[encoding], **resolution_defaults(dataset.width, dataset.height)}
    if dataset.forward_facing:
        camera = dataset.cameras[0]
        config["ndc"] = {"fx_ratio": 2 * float(camera.fx) / camera.width, "fy_ratio": 2 * float(camera.fy) / camera.height,
                         "near": min(1.0, dataset.near) if dataset.near else 1.0}
        config["aabb"] = [-1.5, -1.5, -1.0, 1.5, 1.5, 1.0]
    elif dataset.aabb is not None:
        aabb = dataset.aabb.float()
        pad = 0.05 * (aabb[3:] - aabb[:3]).max()
        config["aabb"] = torch.cat([aabb[:3] - pad, aabb[3:] + pad]).tolist()
    else:  # NeRF-synthetic convention: objects within 3/8 of the camera distance from the origin
        radius = 0.375 * float(dataset.cameras.c2w[:, :3, 3].norm(dim=-1).mean())
        config["aabb"] = [-radius] * 3 + [radius] * 3
    config.update(overrides)
    return config


def _load_split(path, split, downscale):
    from ..data import load

    return load(path, split, downscale=downscale)


def _held_out(path, downscale):
    from ..data import DatasetError

    for split in ("val", "test"):
        try:
            return _load_split(path, split, downscale)
        except DatasetError:
            continue
    return None


def _param_groups(model, lr):
    decayed = [p for n, p in model.named_parameters() if n != "table"]
    groups = [{"params": decayed, "base_lr": lr, "weight_decay": 1e-6 if model.encoding == "hash" else 0.0}]
    if model.encoding == "hash":
        groups.insert(0, {"params": [model.table], "base_lr": lr, "weight_decay": 0.0})
    return groups


def load_run(run, *, map_location="cpu"):
    """``(model, checkpoint)`` from a run folder or checkpoint file."""
    checkpoint = load_checkpoint(run, map_location=map_location)
    return model_from_checkpoint(checkpoint), checkpoint


@with_flushed_denormals
def train_teacher(data, out, *, encoding: str = "hash", steps: int | None = None, minutes: float | None = None,
                  downscale: int = 1, seed: int = 0, resume: bool = False, target_samples: int = 1 << 14,
                  max_rays: int = 8192, lr: float | None = None, grid_every: int = 16, eval_every: int = 500,
                  eval_images: int = 3, checkpoint_every: int = 500, progress: bool = True,
                  centre_fraction: float = 0.5, model_config: dict | None = None, backend=None, log=print) -> dict:
    """Train the NeRF teacher on ``data`` (a dataset folder), writing checkpoints into ``out``.

    Args:
        encoding: ``"hash"`` (Instant-NGP) or ``"frequency"`` (vanilla NeRF).
        steps / minutes: the budget (at least one; training stops at whichever comes first).
        downscale: integer image shrink factor.
        seed: seeds the model init and the training generator.
        resume: continue from ``out/checkpoint.pt`` with its own settings (only the budget may change).
        target_samples: samples per step the ray batch size adapts to (at most ``max_rays`` rays).
        eval_every, eval_images: held-out PSNR on that many val (or test) images every so many steps.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        centre_fraction: share of the budget (steps or time, whichever is further along) trained
            on one ray through each pixel centre before the model's ``supersample`` sub-rays per
            pixel take over; centre rays teach s^2 times more pixels per step while the scene is
            coarse, the sub-rays make the views agree on fine detail.
        model_config: overrides of the ``NeRF`` config.
    Returns:
        a summary dict (steps, seconds, samples per second, last held-out PSNR, ...), also written to ``out/train.json``.
    Raises:
        DatasetError / CheckpointError (UserError): bad data or checkpoint.
        TrainingDiverged: the loss became NaN; the last good checkpoint is kept.
    """
    from ..models import build_model

    keep_freed_memory()
    out = Path(out)
    if steps is None and minutes is None:
        raise UserError("train_teacher: give a budget, steps or minutes")
    for name, value in (("steps", steps), ("minutes", minutes)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise UserError(f"train_teacher: {name} must be positive, got {value!r}")
    if isinstance(centre_fraction, bool) or not 0.0 <= centre_fraction <= 1.0:
        raise UserError(f"train_teacher: centre_fraction must be in [0, 1], got {centre_fraction!r}")
    train_args = {"data": str(Path(data).resolve()), "encoding": encoding, "downscale": int(downscale),
                  "seed": int(seed), "target_samples": int(target_samples), "max_rays": int(max_rays),
                  "lr": lr, "grid_every": int(grid_every), "centre_fraction": float(centre_fraction),
                  "model_config": dict(model_config or {})}
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(out)
        train_args = dict(checkpoint["train_args"])
        if not train_args:
            raise UserError(f"{out}: the checkpoint has no training arguments to resume from")
    dataset = _load_split(train_args["data"], "train", train_args["downscale"])
    held_out = _held_out(train_args["data"], train_args["downscale"])
    encoding = train_args["encoding"]
    centre_fraction = train_args.get("centre_fraction", 0.0)  # checkpoints from before it existed
    base_lr = train_args["lr"] or DEFAULT_LR[encoding]

    torch.manual_seed(train_args["seed"])
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint, averaged=False).train()
    else:
        model = build_model("nerf", **teacher_config_for(dataset, encoding, **train_args["model_config"]))
    optimizer = make_adam(_param_groups(model, base_lr), lr=base_lr)
    average = ParameterAverage(model, decay=EMA_DECAY)
    generator = torch.Generator().manual_seed(train_args["seed"])
    step, train_seconds, state = 0, 0.0, {"samples_per_ray": model.config()["steps_per_diagonal"] / 2.0}
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("averaged"):
            average.load_state_dict(checkpoint["averaged"])
        generator.set_state(checkpoint["rng"]["train"])
        step = checkpoint["step"]
        train_seconds = float(checkpoint["extra"].get("train_seconds", 0.0))
        state.update(checkpoint["extra"].get("state", {}))
    dataset_info = {"path": train_args["data"], "split": "train", "downscale": train_args["downscale"],
                    "format": dataset.format, "width": dataset.width, "height": dataset.height}

    def save(at_step):
        return save_checkpoint(out, model=model, optimizer=optimizer, step=at_step,
                               rng={"train": generator.get_state()}, train_args=train_args, dataset=dataset_info,
                               extra={"train_seconds": train_seconds, "state": dict(state)},
                               averaged=average.state_dict())

    has_alpha = dataset.alphas is not None
    background = dataset.background
    last_saved = checkpoint["step"] if checkpoint is not None else None
    deadline = None if minutes is None else minutes * 60.0
    total_samples, total_rays, session_seconds = 0, 0, 0.0
    history = []
    bar = _progress(progress, steps, step)
    evaluation = None
    model.train()
    try:
        while (steps is None or step < steps) and (deadline is None or train_seconds < deadline):
            tick = time.perf_counter()
            n_rays = int(min(max_rays, max(256, target_samples / max(state["samples_per_ray"], 1.0))))
            used = max(step / steps if steps else 0.0, train_seconds / deadline if deadline else 0.0)
            factor = model.supersample if used >= centre_fraction else 1
            rays_per_pixel = factor * factor
            n_pixels = max(1, (n_rays - n_rays % 64) // rays_per_pixel)
            n_rays = n_pixels * rays_per_pixel
            batch = dataset.sample_rays(n_pixels, generator, supersample=factor)
            target = batch["rgb"]
            ray_background = background
            if has_alpha:  # random backgrounds teach transparency
                pixel_background = torch.rand(n_pixels, 3, generator=generator)
                target = target + (1 - batch["alpha"])[:, None] * (pixel_background - background)
                ray_background = pixel_background.repeat_interleave(rays_per_pixel, dim=0)
            set_lr(optimizer, lr_factor(step))
            result = model.render_rays(batch["origins"], batch["directions"], train=True, generator=generator,
                                       background=ray_background, backend=backend)
            loss = _photometric_loss(average_subpixels(result["rgb"], factor), target)
            if not torch.isfinite(loss):
                where = f"{out}/checkpoint.pt (step {last_saved})" if last_saved is not None else "none was written yet"
                raise TrainingDiverged(f"loss became {float(loss.detach())} at step {step}; training stopped; last good checkpoint: {where}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average.update()
            step += 1
            if step % grid_every == 0:
                model.update_grid(step=step, generator=generator, n_samples=model.grid.occupied.numel() // 8)
            samples_per_ray = result["n_samples"] / n_rays
            state["samples_per_ray"] = 0.9 * state["samples_per_ray"] + 0.1 * samples_per_ray
            elapsed = time.perf_counter() - tick
            train_seconds += elapsed
            session_seconds += elapsed
            total_samples += result["n_samples"]
            total_rays += n_rays
            mse = float(loss.detach())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{mse:.4f}", psnr=f"{psnr_from_mse(mse):.2f}", spr=f"{samples_per_ray:.1f}",
                                occ=f"{model.occupancy():.3f}", rays=n_rays, refresh=False)
            if held_out is not None and eval_every and step % eval_every == 0:
                with average.swapped_in():
                    evaluation = evaluate(model, held_out, backend=backend, max_images=eval_images, with_ssim=False)
                history.append({"step": step, "seconds": round(train_seconds, 2), "psnr": evaluation["psnr"]})
                _write(bar, log, f"step {step}: held-out PSNR {evaluation['psnr']:.2f} dB "
                       f"({evaluation['n_images']} {held_out.split} images, {train_seconds:.0f} s)")
                model.train()
            if checkpoint_every and step % checkpoint_every == 0:
                save(step)
                last_saved = step
    finally:
        if bar is not None:
            bar.close()
    save(step)
    average.copy_to_model()  # from here on the model holds the weights evaluation and rendering use
    if held_out is not None and (evaluation is None or history[-1]["step"] != step):
        evaluation = evaluate(model, held_out, backend=backend, max_images=eval_images, with_ssim=False)
        history.append({"step": step, "seconds": round(train_seconds, 2), "psnr": evaluation["psnr"]})
    summary = {
        "steps": step, "train_seconds": train_seconds, "encoding": encoding,
        "samples_per_second": total_samples / session_seconds if session_seconds else 0.0,
        "rays_per_second": total_rays / session_seconds if session_seconds else 0.0,
        "samples_per_ray": state["samples_per_ray"], "occupancy": model.occupancy(),
        "held_out_psnr": None if evaluation is None else evaluation["psnr"], "history": history,
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2))
    summary["model"] = model.eval()
    return summary


def _photometric_loss(rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((rgb - target) ** 2)


def _progress(enabled, steps, initial):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5)


def _write(bar, log, message):
    if bar is not None:
        bar.write(message)
    elif log is not None:
        log(message)


__all__ = ["load_run", "teacher_config_for", "train_teacher"]
