"""PixelNeRF's training task (``fastnerf train pixelnerf --data SCENES``), run by the engine.

One step: draw ``scenes_per_step`` scenes; in each, 1 to ``max_views`` random source views and
``rays_per_scene`` random pixels of its other views; encode the sources, render the rays, MSE.
Scenes with object masks (RGBA Blender scenes) train on a random background per ray, which
teaches empty space to be empty (what the fast renderer's occupancy pass relies on).
The periodic held-out check renders a fixed set of pixels of a few held-out scenes (``--eval-data``,
else the last training scenes' other views) with one source view.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import UserError
from . import Task, register_task

EMA_DECAY = 0.995


def pixelnerf_config_for(dataset, **overrides) -> dict:
    """Model config for a ``MultiSceneDataset``: its box, ray bounds and background."""
    config = {"aabb": [float(v) for v in dataset.aabb], "near": float(dataset.near), "far": float(dataset.far),
              "background": [float(v) for v in dataset.background]}
    config.update(overrides)
    return config


def draw_batch(scene, n_views: int, n_rays: int, generator: torch.Generator, device) -> dict:
    """Random sources and target pixels of one scene: ``dict(images [V,H,W,3], cameras, origins [n,3],
    directions [n,3], rgb [n,3], alpha [n] or None)``."""
    draw = generator.device
    pool = torch.tensor(scene.source_pool)
    sources = pool[torch.randperm(len(pool), generator=generator, device=draw).cpu()[:n_views]].tolist()
    targets = [v for v in scene.target_pool if v not in sources] or sources
    view = torch.tensor(targets)[torch.randint(len(targets), (n_rays,), generator=generator, device=draw).cpu()]
    height, width = scene.cameras.height, scene.cameras.width
    flat = torch.randint(height * width, (n_rays,), generator=generator, device=draw).cpu()
    rows, cols = flat // width, flat % width
    origins, directions = scene.cameras.pixel_rays(view, rows, cols)
    return {"images": scene.images[sources].to(device), "cameras": scene.cameras[sources].to(device),
            "origins": origins.to(device), "directions": directions.to(device),
            "rgb": scene.images[view, rows, cols].to(device),
            "alpha": None if scene.masks is None else scene.masks[view, rows, cols].to(device)}


@register_task("pixelnerf")
class PixelNeRFTask(Task):
    """Train PixelNeRF on a multi-scene dataset (Blender-scene folder, SRN, DTU).

    Args:
        data: the scenes (``fastnerf.data.load_scenes``); eval_data: held-out scenes (optional).
        downscale: image shrink factor; max_scenes: use at most this many training scenes.
        scenes_per_step, rays_per_scene, max_views: the batch (views drawn from 1..max_views).
        lr: Adam learning rate.
        model_config: overrides of the ``PixelNeRF`` config (e.g. ``{"hidden": 128}``).
    """

    ema_decay = EMA_DECAY

    def __init__(self, *, data, eval_data=None, downscale: int = 1, max_scenes: int | None = None,
                 scenes_per_step: int = 4, rays_per_scene: int = 128, max_views: int = 3, lr: float = 1e-3,
                 eval_scenes: int = 2, eval_pixels: int = 2048, model_config: dict | None = None):
        for name, value in (("scenes_per_step", scenes_per_step), ("rays_per_scene", rays_per_scene),
                            ("max_views", max_views), ("downscale", downscale)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"pixelnerf: {name} must be a positive integer, got {value!r}")
        self.args = {"data": str(Path(data).resolve()), "eval_data": None if eval_data is None else str(Path(eval_data).resolve()),
                     "downscale": int(downscale), "max_scenes": max_scenes, "scenes_per_step": int(scenes_per_step),
                     "rays_per_scene": int(rays_per_scene), "max_views": int(max_views), "lr": float(lr),
                     "eval_scenes": int(eval_scenes), "eval_pixels": int(eval_pixels),
                     "model_config": dict(model_config or {})}
        self._train = self._held_out = None

    def train_args(self) -> dict:
        return dict(self.args)

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--data", required=True, metavar="SCENES",
                            help="multi-scene dataset: a folder of Blender scenes, SRN/ShapeNet, or DTU")
        parser.add_argument("--eval-data", default=None, metavar="SCENES", help="held-out scenes for the periodic check")
        parser.add_argument("--downscale", type=int, default=1, metavar="K", help="shrink images by K (default 1)")
        parser.add_argument("--max-scenes", type=int, default=None, metavar="N", help="use at most N training scenes")
        parser.add_argument("--scenes-per-step", type=int, default=4, metavar="N")
        parser.add_argument("--rays-per-scene", type=int, default=128, metavar="N")
        parser.add_argument("--max-views", type=int, default=3, metavar="K", help="source views drawn from 1..K")
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--hidden", type=int, default=None, help="MLP width (default 64; pixelNeRF: 512)")
        parser.add_argument("--encoder", choices=("small", "resnet34"), default=None,
                            help="image encoder (default small; resnet34 is pixelNeRF's)")
        parser.add_argument("--encoder-weights", default=None, metavar="FILE",
                            help="torchvision ResNet-34 state dict for --encoder resnet34")

    @classmethod
    def from_args(cls, args) -> "PixelNeRFTask":
        model_config = {key: value for key, value in (("hidden", args.hidden), ("encoder", args.encoder),
                                                      ("encoder_weights", args.encoder_weights)) if value is not None}
        if "encoder_weights" in model_config:
            model_config.setdefault("encoder", "resnet34")
        return cls(data=args.data, eval_data=args.eval_data, downscale=args.downscale, max_scenes=args.max_scenes,
                   scenes_per_step=args.scenes_per_step, rays_per_scene=args.rays_per_scene,
                   max_views=args.max_views, lr=args.lr, model_config=model_config)

    # ----------------------------------------------------------------------- data
    def _datasets(self):
        if self._train is None:
            from ...data import load_scenes

            a = self.args
            self._train = load_scenes(a["data"], "train", downscale=a["downscale"], max_scenes=a["max_scenes"])
            if a["eval_data"] is not None:
                self._held_out = load_scenes(a["eval_data"], "test", downscale=a["downscale"],
                                             max_scenes=a["eval_scenes"])
        return self._train

    def dataset_info(self) -> dict:
        dataset = self._datasets()
        scene = dataset[0]
        return {"path": self.args["data"], "split": "train", "downscale": self.args["downscale"],
                "format": dataset.format, "multi_scene": True, "n_scenes": len(dataset),
                "width": scene.cameras.width, "height": scene.cameras.height}

    # ----------------------------------------------------------------------- training
    def build_model(self, ctx):
        from ...models import build_model

        config = pixelnerf_config_for(self._datasets(), **self.args["model_config"])
        model = build_model("pixelnerf", **config)
        if config.get("encoder_weights"):
            self.args["model_config"].pop("encoder_weights")  # loaded now; the checkpoint carries the weights
            self.args["model_config"]["encoder"] = "resnet34"
        return model

    def param_groups(self, model) -> list:
        return [{"params": list(model.parameters()), "base_lr": self.args["lr"]}]

    def loss(self, model, step: int, ctx):
        dataset, a, generator = self._datasets(), self.args, ctx.generator
        draw = generator.device
        picks = torch.randint(len(dataset), (a["scenes_per_step"],), generator=generator, device=draw).tolist()
        losses, n_samples, n_rays = [], 0, 0
        for index in picks:
            scene = dataset[index]
            n_views = int(torch.randint(1, min(a["max_views"], len(scene.source_pool)) + 1, (1,), generator=generator,
                                        device=draw))
            batch = draw_batch(scene, n_views, a["rays_per_scene"], generator, ctx.device)
            target, background = batch["rgb"], torch.tensor(dataset.background, device=ctx.device)
            if batch["alpha"] is not None and dataset.format == "blender":  # random backgrounds teach empty space
                random_bg = torch.rand(target.shape[0], 3, generator=generator, device=draw).to(ctx.device)
                target = target + (1 - batch["alpha"])[:, None] * (random_bg - background)
                background = random_bg
            views = model.encode_views(batch["images"], batch["cameras"])
            out = model.render_rays(batch["origins"], batch["directions"], views=views, background=background,
                                    generator=generator, backend=ctx.backend)
            losses.append(torch.mean((out["rgb"] - target) ** 2))
            n_samples += out["n_samples"] * n_views
            n_rays += target.shape[0]
        loss = torch.stack(losses).mean()
        psnr = -10.0 * torch.log10(loss.detach().clamp_min(1e-10))
        return loss, {"psnr": float(psnr), "n_samples": n_samples, "n_rays": n_rays}

    @torch.no_grad()
    def evaluate(self, model, ctx) -> dict | None:
        """PSNR of a fixed set of pixels of held-out target views with one source view (fast mode)."""
        from ...metrics import psnr

        dataset = self._held_out
        scenes = dataset.scenes[:self.args["eval_scenes"]] if dataset is not None else self._datasets().scenes[-1:]
        model.eval()
        predictions, truths = [], []
        pixels_per_scene = max(1, self.args["eval_pixels"] // len(scenes))
        for scene in scenes:
            sources, targets = scene.choose_views(1)
            if not targets:
                continue
            views = model.encode_views(scene.images[sources].to(ctx.device), scene.cameras[sources].to(ctx.device))
            g = torch.Generator().manual_seed(0)
            view = torch.tensor(targets)[torch.randint(len(targets), (pixels_per_scene,), generator=g)]
            flat = torch.randint(scene.cameras.height * scene.cameras.width, (pixels_per_scene,), generator=g)
            rows, cols = flat // scene.cameras.width, flat % scene.cameras.width
            origins, directions = scene.cameras.pixel_rays(view, rows, cols)
            out = model.render_rays(origins.to(ctx.device), directions.to(ctx.device), views=views, backend=ctx.backend)
            predictions.append(out["rgb"].clamp(0, 1).cpu())
            truths.append(scene.images[view, rows, cols])
        if not predictions:
            return None
        return {"psnr": psnr(torch.cat(predictions)[None, None], torch.cat(truths)[None, None])}

    def summary(self, model) -> dict:
        return {"n_scenes": len(self._datasets()), "config": model.config()}
