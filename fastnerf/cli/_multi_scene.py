"""The multi-scene side of ``fastnerf eval`` / ``render`` / ``view``: runs of a task that declares
``multi_scene`` (``fastnerf.train.tasks.Task``), evaluated and rendered scene by scene from source views.

``eval`` and ``render`` call ``run_eval`` / ``run_render`` here when ``is_multi_scene_run`` (the
run's task says so) or ``--views`` / ``--scene`` is given; ``view`` conditions such runs on a scene.
No kind is named here: the task and the registry say which runs these are. The underscore keeps the
dispatcher from registering it as a command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..errors import UserError


def is_multi_scene_run(run) -> bool:
    """Whether ``run`` was trained by a task that declares ``multi_scene`` (False for a task this
    fastnerf does not have: loading the run says what is wrong with it)."""
    from ..runs import load_checkpoint
    from ..train.tasks import task_class_of

    task = task_class_of(load_checkpoint(run, map_location="cpu"))
    return bool(task is not None and task.multi_scene)


def _conditioned_kinds() -> str:
    """The registered kinds conditioned on source views (for messages)."""
    from ..models import kinds

    return ", ".join(kind.name for kind in kinds() if hasattr(kind.model_class, "encode_views"))


def _eval_one(model, dataset, args, views, source_views, mode) -> dict:
    from ..train.multi_scene_eval import evaluate_scenes

    return evaluate_scenes(model, dataset, n_views=views, source_views=source_views, backend=args.backend,
                           mode=mode, max_targets=getattr(args, "max_targets", None),
                           latency_renders=getattr(args, "latency_renders", 100), progress=True)


def run_eval(args: argparse.Namespace) -> int:
    """``fastnerf eval RUN --data SCENES --split test --views K [--source-views I,J] [--json F]``."""
    from ..data import load_scenes
    from ..data.scene_loading import parse_source_views
    from ..runs import load_run

    model, checkpoint = load_run(args.run, device=getattr(args, "device", None))
    if not hasattr(model, "encode_views"):
        raise UserError(f"{args.run}: --views and --source-views apply to image-conditioned runs "
                        f"({_conditioned_kinds()}); this is a {checkpoint['model_kind']!r} run")
    info = checkpoint.get("dataset", {})
    data = args.data or info.get("path")
    downscale = args.downscale or info.get("downscale", 1)
    dataset = load_scenes(data, args.split, downscale=downscale)
    source_views = parse_source_views(getattr(args, "source_views", None))
    views = getattr(args, "views", None) or 1
    mode = "dense" if getattr(args, "dense_samples", None) else None
    start = time.perf_counter()
    result = _eval_one(model, dataset, args, views, source_views, mode)
    figures = {"run": str(args.run), "kind": checkpoint["model_kind"], "data": str(data), "split": args.split,
               "format": dataset.format, "downscale": downscale, "step": checkpoint["step"],
               "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - start, 2), **result}
    masked = result["psnr_masked"]
    print(f"{args.split}: {result['n_scenes']} scenes, {result['n_targets']} targets, views {result['views']}  "
          f"PSNR {result['psnr']:.2f} dB" + (f" (object {masked:.2f})" if masked is not None else "")
          + (f"  SSIM {result['ssim']:.4f}" if result["ssim"] is not None else "")
          + f"  nearest-source baseline {result['baseline_psnr']:.2f} dB  latency {result['latency_ms']:.1f} ms"
          f"  {result['evals_per_pixel']:.1f} field evaluations / pixel")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def run_render(args: argparse.Namespace) -> int:
    """``fastnerf render RUN --scene DIR --source-views 0,3 --path orbit --out FILE.gif``."""
    from ..camera_path import path_cameras
    from ..frames import write_frames
    from ..data import load
    from ..data.scene_loading import load_scenes, parse_source_views
    from ..rendering import render
    from ..runs import load_run

    if args.scene is None:
        raise UserError(f"{args.run} renders from source views: give --scene DIR (and --source-views I,J)")
    model, checkpoint = load_run(args.run, device=getattr(args, "device", None))
    if not hasattr(model, "encode_views"):
        raise UserError(f"{args.run}: --scene applies to image-conditioned runs ({_conditioned_kinds()})")
    downscale = args.downscale or checkpoint.get("dataset", {}).get("downscale", 1)
    scene_path = Path(args.scene)
    if (scene_path / "transforms_train.json").is_file():  # one Blender scene
        train = load(scene_path, "train", downscale=downscale)
        images, cameras, test = train.images, train.cameras, None
        try:
            test = load(scene_path, "test", downscale=downscale)
        except UserError:
            pass
    else:  # one SRN instance or DTU scan: the first scene of what load_scenes finds there
        scene = load_scenes(scene_path, "test", downscale=downscale)[0]
        images, cameras, train, test = scene.images, scene.cameras, None, None
    source_views = parse_source_views(args.source_views) or [0]
    bad = [v for v in source_views if not 0 <= v < images.shape[0]]
    if bad:
        raise UserError(f"--source-views {bad} out of range: {args.scene} has views 0..{images.shape[0] - 1}")
    if args.path == "test":
        if test is None:
            raise UserError(f"{args.scene}: no test split to render --path test")
        targets = test.cameras
    else:
        reference = train if train is not None else _as_dataset(images, cameras)
        config = model.config()
        targets = path_cameras(reference, args.path, args.frames, torch.tensor(config["aabb"]))
    frames = render(model, targets, backend=args.backend, views=(images[source_views], cameras[source_views]))["rgb"]
    write_frames(frames, Path(args.out), args.fps or 12.0)
    print(f"wrote {frames.shape[0]} frames of {targets.width}x{targets.height} from source views {source_views} "
          f"to {args.out}")
    return 0


def _as_dataset(images, cameras):
    from ..data import Dataset

    return Dataset(images, cameras)
