"""The NeRF teacher's training task (``fastnerf train teacher``), run by ``fastnerf.train.engine``.

One step: draw pixels over all training images, ``s x s`` jittered rays through each (the model's
``supersample``) -> ``model.render_rays(train=True)`` (ray_aabb -> march_rays through the
occupancy grid -> field -> composite) -> MSE of the pixel means. The number of rays per step
adapts so each step evaluates about ``target_samples`` samples over all ranks. The occupancy grid
is refreshed every ``grid_every`` steps (a max over the ranks). RGBA datasets train on a random
background per pixel. Pixels are fit with centre rays for the first ``centre_fraction`` of the
steps, with the sub-rays after (a schedule of the step count alone, so runs resume exactly).

``scene="unbounded"`` models all of space (docs/unbounded.md): the box becomes the inner box of
mip-NeRF 360's contraction, rays run to a far plane with cone stepping. A bounded run whose
data looks unbounded (``fastnerf.data.bounds``) says so in a log line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import UserError
from ...options import REQUIRED, Option, Options
from ...supersampling import average_subpixels, subpixel_offsets, subpixel_rays
from ..backgrounds import on_random_backgrounds
from . import Task, register_task

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
SCENES = ("bounded", "unbounded")
# Unbounded: cone stepping with a step of one pixel's angle (1 / fx) of the distance, at least
# Instant-NGP's 1/256 for large scenes: near the objects the step stays about the bounded one
# (STEPS_PER_PIXEL). Past the inner box's farthest corner from any camera the steps grow as
# t^2 (disparity_step = cone_angle / that distance: samples evenly spaced in disparity, as in
# mip-NeRF 360's far field), so a ray to any far plane costs at most ~1 / cone_angle samples
# more. The contracted grid's cells grow as t^2 too: with cone steps alone (t growing) a ray took
# ~100 steps through each 64^3 cell of garden's environment, all kept (55 samples a ray against
# the bounded 22.7, docs/unbounded.md). The inner box is the middle half of the contracted cube,
# so the finest hash level doubles to keep the box's detail.
MIN_CONE_ANGLE = 1.0 / 256
# Fewest rays a step, per scene model. An unbounded ray marches ~5x a bounded one's intervals
# while the grid warms up (every cell occupied, near to far): 256 rays would make those steps
# 5x the target samples.
MIN_RAYS = {"bounded": 256, "unbounded": 64}


def resolution_defaults(width: int, height: int) -> dict:
    """``hash_max_res`` and ``steps_per_diagonal`` for training images of ``width x height``."""
    pixels = max(int(width), int(height))
    return {"hash_max_res": int(min(2048, max(64, round(HASH_RES_PER_PIXEL * pixels)))),
            "steps_per_diagonal": int(min(1024, max(128, round(STEPS_PER_PIXEL * pixels))))}


def teacher_config_for(dataset, encoding: str = "hash", scene: str = "bounded", **overrides) -> dict:
    """NeRF config for ``dataset``: NDC for forward-facing captures, else its aabb (padded 5%);
    the finest hash level and the marching step follow the image size (``resolution_defaults``);
    pixels are area averages of ``SUPERSAMPLE[encoding]``^2 rays. ``scene="unbounded"``: that box
    (for Instant-NGP's ``aabb_scale``, its unit cube) is the inner box of contracted space, rays
    end at ``fastnerf.data.bounds.far_plane`` (see ``unbounded_config``)."""
    if scene not in SCENES:
        raise UserError(f"teacher: scene must be one of {', '.join(SCENES)}, got {scene!r}")
    config = {"encoding": encoding, "background": dataset.background.tolist(),
              "supersample": SUPERSAMPLE[encoding], **resolution_defaults(dataset.width, dataset.height)}
    if scene == "unbounded":
        config.update(unbounded_config(dataset, config["hash_max_res"]))
    elif dataset.forward_facing:
        camera = dataset.cameras[0]
        config["ndc"] = {"fx_ratio": 2 * float(camera.fx) / camera.width, "fy_ratio": 2 * float(camera.fy) / camera.height,
                         "near": min(1.0, dataset.near) if dataset.near else 1.0}
        config["aabb"] = [-1.5, -1.5, -1.0, 1.5, 1.5, 1.0]
    elif dataset.aabb is not None:
        config["aabb"] = _padded(dataset.aabb)
    else:
        config["aabb"] = _camera_radius_box(dataset)
    config.update(overrides)
    return config


def _padded(aabb: torch.Tensor) -> list:
    aabb = aabb.float()
    pad = 0.05 * (aabb[3:] - aabb[:3]).max()
    return torch.cat([aabb[:3] - pad, aabb[3:] + pad]).tolist()


def _camera_radius_box(dataset) -> list:  # NeRF-synthetic convention: objects within 3/8 of the camera distance
    radius = 0.375 * float(dataset.cameras.c2w[:, :3, 3].norm(dim=-1).mean())
    return [-radius] * 3 + [radius] * 3


def unbounded_config(dataset, hash_max_res: int) -> dict:
    """The unbounded part of the config: contraction around the inner box, cone stepping (evenly
    spaced in disparity past the box's farthest corner from the cameras), near/far."""
    from ...data.bounds import box_reach, far_plane, inner_box

    if dataset.forward_facing:
        raise UserError("teacher: --scene unbounded is for captures around a scene; this one is forward-facing, "
                        "rendered in NDC, which already maps its infinite frustum into a box: use --scene bounded")
    box = inner_box(dataset)
    aabb = _padded(box) if box is not None else _camera_radius_box(dataset)
    cone_angle = max(MIN_CONE_ANGLE, float(1.0 / dataset.cameras.fx.double().median()))
    return {"aabb": aabb, "contraction": "mipnerf360", "cone_angle": cone_angle,
            "near": float(dataset.near or 0.0), "far": far_plane(dataset, aabb),
            "disparity_step": cone_angle / box_reach(dataset, aabb),
            "hash_max_res": int(min(4096, 2 * hash_max_res))}


def load_held_out(path, downscale: int, *, skip_missing: bool = False):
    """The val split, else the test split, else None: only a split that is absent falls back; a
    malformed one is an error (a silently skipped check hides broken data)."""
    from ...data import SplitMissing, load

    for split in ("val", "test"):
        try:
            return load(path, split, downscale=downscale, skip_missing=skip_missing)
        except SplitMissing:
            continue
    return None


def _photometric_loss(rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((rgb - target) ** 2)


@register_task("teacher")
class TeacherTask(Task):
    """Fit the NeRF teacher to a posed-image dataset (see the module docstring).

    Args:
        data: the dataset folder (Blender, Instant-NGP / nerfstudio or LLFF).
        scene: ``"bounded"`` (the model lives in a box) or ``"unbounded"`` (contracted space, cone
            stepping to a far plane: captures that see far past any box; docs/unbounded.md).
        encoding: ``"hash"`` (Instant-NGP) or ``"frequency"`` (vanilla NeRF).
        downscale: integer image shrink factor; skip_missing: skip frames whose image is absent.
        target_samples: samples per step over all ranks the ray batch adapts to (at most
            ``max_rays`` rays over all ranks): the global batch.
        lr: base learning rate (default per encoding); grid_every: steps between grid refreshes.
        centre_fraction: share of the steps trained on one ray through each pixel centre before
            the model's ``supersample`` sub-rays per pixel take over; centre rays teach s^2 times
            more pixels per step while the scene is coarse, the sub-rays make the views agree.
        eval_images, eval_pixels: the periodic held-out check renders at most ``eval_pixels``
            pixels (a fixed subset) of the first ``eval_images`` held-out views, so it costs
            about the same at any resolution.
        model_config: overrides of the ``NeRF`` config.
    """

    ema_decay = EMA_DECAY
    model_option = "model_config"
    options = Options(
        Option("data", REQUIRED, "dataset folder (Blender, Instant-NGP, LLFF)", type=Path, flag=True, metavar="DIR"),
        Option("encoding", "hash", "field encoding", choices=tuple(SUPERSAMPLE), flag=True),
        Option("scene", "bounded", "scene model: bounded (one box) or unbounded (contracted space, cone steps to a "
               "far plane; for captures that see far past the box)", choices=SCENES, flag=True),
        Option("downscale", 1, "shrink images by K", flag=True, metavar="K", minimum=1),
        Option("target_samples", 1 << 14, "samples per step over all ranks", minimum=1),
        Option("max_rays", 8192, "rays per step over all ranks, at most", minimum=1),
        Option("lr", None, "base learning rate (default per encoding)", type=float),
        Option("grid_every", 16, "steps between occupancy-grid refreshes", minimum=1),
        Option("centre_fraction", 0.5, "share of the steps on pixel-centre rays", minimum=0, maximum=1),
        Option("eval_images", 3, "held-out views of the periodic check", minimum=0),
        Option("eval_pixels", 4096, "pixels the periodic check renders", minimum=1),
        Option("skip_missing", False, "skip frames whose image file is absent (with a warning) instead of stopping",
               flag=True),
        Option("model_config", {}, "overrides of the model config"),
    )

    def __init__(self, **values):
        super().__init__(**values)
        self.samples_per_ray = None
        self.sub_rays_from = None  # the step the switch to sub-rays came at (it never switches back)
        self._train = self._held_out = None

    @classmethod
    def from_train_args(cls, args: dict) -> "TeacherTask":
        args = {"centre_fraction": 0.0, **args}  # runs from before sub-rays trained on centre rays only
        return super().from_train_args(args)

    # ----------------------------------------------------------------------- data
    def _datasets(self, device):
        if self._train is None:
            from ...data import load

            a = self.args
            self._train = load(a["data"], "train", downscale=a["downscale"], skip_missing=a["skip_missing"]).to(device)
            self._held_out = load_held_out(a["data"], a["downscale"], skip_missing=a["skip_missing"])
        return self._train

    def dataset_info(self) -> dict:
        dataset = self._train
        return {"path": self.args["data"], "split": "train", "downscale": self.args["downscale"],
                "format": dataset.format, "width": dataset.width, "height": dataset.height}

    # ----------------------------------------------------------------------- training
    def build_model(self, ctx):
        from ...models import build_model

        dataset = self._datasets(ctx.device)
        config = teacher_config_for(dataset, self.args["encoding"], self.args["scene"], **self.args["model_config"])
        model = build_model("nerf", **config)
        if self.args["scene"] == "bounded" and not ctx.resuming:
            self._suggest_unbounded(dataset, config, ctx.log)
        if self.samples_per_ray is None:
            self.samples_per_ray = model.intervals_per_ray()
        return model

    @staticmethod
    def _suggest_unbounded(dataset, config, log) -> None:
        from ...data.bounds import unbounded_reason

        reason = None if config.get("ndc") else unbounded_reason(dataset, config["aabb"])
        if reason:
            log(f"teacher: this scene looks unbounded ({reason}); a bounded teacher paints what lies "
                "outside its box on the box's walls: try --scene unbounded")

    def param_groups(self, model) -> list:
        lr = self.args["lr"] or DEFAULT_LR[self.args["encoding"]]
        hash_grid = self.args["encoding"] == "hash"
        tables = [p for n, p in model.named_parameters() if n.endswith("table")]
        others = [p for n, p in model.named_parameters() if not n.endswith("table")]
        groups = [{"params": others, "base_lr": lr, "weight_decay": 1e-6 if hash_grid else 0.0}]
        if tables:
            groups.insert(0, {"params": tables, "base_lr": lr, "weight_decay": 0.0})
        return groups

    def _factor(self, model, step: int, total_steps: int | None) -> int:
        fraction = self.args["centre_fraction"]
        if fraction <= 0.0:
            return model.supersample
        if self.sub_rays_from is not None and step >= self.sub_rays_from:
            return model.supersample
        if total_steps is None:  # a minutes budget still calibrating: still early
            return 1
        if step / total_steps < fraction:
            return 1
        # sticky: a minutes budget's count may grow later (budget.py), which must not switch back
        self.sub_rays_from = step
        return model.supersample

    def loss(self, model, step: int, ctx):
        dataset, a, generator = self._train, self.args, ctx.generator
        target_samples, max_rays = a["target_samples"] / ctx.world_size, a["max_rays"] / ctx.world_size
        min_rays = MIN_RAYS[a["scene"]]  # per rank
        n_rays = int(min(max_rays, max(min_rays, target_samples / max(self.samples_per_ray, 1.0))))
        factor = self._factor(model, step, ctx.total_steps)
        rays_per_pixel = factor * factor
        n_pixels = max(1, (n_rays - n_rays % 64) // rays_per_pixel)
        n_rays = n_pixels * rays_per_pixel
        batch = dataset.sample_rays(n_pixels, generator, supersample=factor)
        target, background = batch["rgb"], dataset.background
        if dataset.alphas is not None:  # random backgrounds teach transparency
            target, pixel_background = on_random_backgrounds(target, batch["alpha"], background, generator)
            background = pixel_background.repeat_interleave(rays_per_pixel, dim=0)
        result = model.render_rays(batch["origins"], batch["directions"], train=True, generator=generator,
                                   background=background, backend=ctx.backend)
        loss = _photometric_loss(average_subpixels(result["rgb"], factor), target)
        samples_per_ray = result["n_samples"] / n_rays
        self.samples_per_ray = 0.9 * self.samples_per_ray + 0.1 * samples_per_ray
        return loss, {"n_samples": result["n_samples"], "n_rays": n_rays, "spr": round(samples_per_ray, 1),
                      "rays": n_rays}

    def after_step(self, model, step: int, ctx) -> None:
        if step % self.args["grid_every"] == 0:
            reduce = (lambda ema: ctx.all_reduce_(ema, "max")) if ctx.world_size > 1 else None
            model.update_grid(step=step, generator=ctx.generator, n_samples=model.grid.occupied.numel() // 8,
                              reduce=reduce, backend=ctx.backend)

    @torch.no_grad()
    def evaluate(self, model, ctx) -> dict | None:
        from ...metrics import psnr

        held_out = self._held_out
        if held_out is None or not self.args["eval_images"]:
            return None
        model.eval()
        count = min(self.args["eval_images"], len(held_out))
        per_image = held_out.height * held_out.width
        total = count * per_image
        pick = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:self.args["eval_pixels"]]
        pick = pick.sort().values.to(ctx.device)  # the same pixels at every check: comparable figures
        image, rows, cols = pick // per_image, (pick % per_image) // held_out.width, pick % held_out.width
        cameras = held_out.cameras.to(ctx.device)
        factor = model.supersample
        rgb = []
        for start in range(0, pick.numel(), 4096):
            part = slice(start, start + 4096)
            rays_o, rays_d = subpixel_rays(cameras, image[part], rows[part], cols[part],
                                           subpixel_offsets(factor, device=ctx.device))
            out = model.render_rays(rays_o, rays_d, background=held_out.background.to(ctx.device), backend=ctx.backend)
            rgb.append(average_subpixels(out["rgb"], factor))
        truth = held_out.images[image.cpu(), rows.cpu(), cols.cpu()]
        return {"psnr": psnr(torch.cat(rgb).clamp(0, 1).cpu()[None], truth[None]), "pixels": int(pick.numel())}

    def state_dict(self) -> dict:
        return {"samples_per_ray": self.samples_per_ray, "sub_rays_from": self.sub_rays_from}

    def load_state_dict(self, state: dict) -> None:
        if "samples_per_ray" in state:
            self.samples_per_ray = float(state["samples_per_ray"])
        self.sub_rays_from = state.get("sub_rays_from")

    def summary(self, model) -> dict:
        return {"encoding": self.args["encoding"], "scene": self.args["scene"], "samples_per_ray": self.samples_per_ray,
                "occupancy": model.occupancy()}


def train_teacher(data, out, *, encoding: str = "hash", steps: int | None = None, minutes: float | None = None,
                  downscale: int = 1, seed: int = 0, resume: bool = False, device=None, backend=None,
                  eval_every: int = 500, checkpoint_every: int = 500, progress: bool = True, log=print,
                  **task_options) -> dict:
    """Train the NeRF teacher on ``data`` into the run folder ``out`` (the engine's ``train`` with a
    ``TeacherTask``; ``task_options`` are its other arguments). Returns the engine's summary."""
    from ..engine import train

    task = None if resume else TeacherTask(data=data, encoding=encoding, downscale=downscale, **task_options)
    return train(task, out, steps=steps, minutes=minutes, seed=seed, resume=resume, device=device, backend=backend,
                 eval_every=eval_every, checkpoint_every=checkpoint_every, progress=progress, log=log)
