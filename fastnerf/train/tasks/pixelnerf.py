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

from ...options import REQUIRED, Option, Options
from ..backgrounds import on_random_backgrounds
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
    multi_scene = True  # eval, render and view take a scene and its source views
    model_option = "model_config"  # the kind's flags (--hidden, --encoder, --encoder-weights) go there
    options = Options(
        Option("data", REQUIRED, "multi-scene dataset: a folder of Blender scenes, SRN/ShapeNet, or DTU", type=Path,
               flag=True, metavar="SCENES"),
        Option("eval_data", None, "held-out scenes for the periodic check", type=Path, flag=True, metavar="SCENES"),
        Option("downscale", 1, "shrink images by K", flag=True, metavar="K", minimum=1),
        Option("max_scenes", None, "use at most N training scenes", type=int, flag=True, metavar="N", minimum=1),
        Option("scenes_per_step", 4, "scenes per step", flag=True, metavar="N", minimum=1),
        Option("rays_per_scene", 128, "rays per scene and step", flag=True, metavar="N", minimum=1),
        Option("max_views", 3, "source views drawn from 1..K", flag=True, metavar="K", minimum=1),
        Option("lr", 1e-3, "Adam learning rate", flag=True, minimum=0),
        Option("eval_scenes", 2, "held-out scenes of the periodic check", minimum=1),
        Option("eval_pixels", 2048, "pixels the periodic check renders", minimum=1),
        Option("model_config", {}, "overrides of the model config (e.g. {\"hidden\": 128})"),
    )

    def __init__(self, **values):
        super().__init__(**values)
        model_config = self.args["model_config"]
        if model_config.get("encoder_weights"):  # weights are for the ResNet-34 encoder
            model_config.setdefault("encoder", "resnet34")
        self._train = self._held_out = None

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
                "format": dataset.format, "multi_scene": self.multi_scene, "n_scenes": len(dataset),
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
                target, background = on_random_backgrounds(target, batch["alpha"], background, generator)
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
