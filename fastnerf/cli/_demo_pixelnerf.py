"""``fastnerf demo pixelnerf``: random built-in scenes -> PixelNeRF trained on them -> 1-, 2- and
3-view renders of scenes it never saw, a table against the nearest-source-view baseline, and an
orbit GIF. ``add_arguments(parser)`` and ``run(args)`` are what ``cli/demo.py`` dispatches to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


QUICK = {"train_scenes": 12, "test_scenes": 3, "minutes": 3.0}
LATENCY_RENDERS = 10  # timed renders per row of the table (fastnerf.timing's protocol, fewer repeats)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this demo only (--out, --res, --minutes, --steps, --frames, --quick are demo.py's)."""
    group = parser.add_argument_group("pixelnerf demo")
    group.add_argument("--train-scenes", type=int, default=None, metavar="N",
                       help="random training scenes (default 48; quick 12)")
    group.add_argument("--test-scenes", type=int, default=None, metavar="N", help="unseen scenes (default 6; quick 3)")


def _figure(rows, path: Path) -> None:
    """A PNG grid: per row, the sources, then the rendering and the truth of one target."""
    import imageio.v2 as imageio
    import torch

    width = max(len(sources) + 2 for sources, _, _ in rows)
    height, size = len(rows), rows[0][1].shape[0]
    canvas = torch.ones(height * size, width * size, 3)
    for r, (sources, rendered, truth) in enumerate(rows):
        for c, image in enumerate(list(sources) + [rendered, truth]):
            column = c if c < len(sources) else width - (len(sources) + 2 - c)
            canvas[r * size:(r + 1) * size, column * size:(column + 1) * size] = image.clamp(0, 1)
    imageio.imwrite(path, (canvas * 255 + 0.5).to(torch.uint8).numpy())


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_scenes
    from ..data.procedural import make_random_scenes
    from ..rendering import render
    from ..train.engine import train
    from ..train.multi_scene_eval import evaluate_scenes
    from ..train.tasks.pixelnerf import PixelNeRFTask
    from ..camera_path import path_cameras
    from ..frames import write_frames

    out = Path(args.out)
    seed = args.seed
    args.res = args.res or 64
    args.frames = args.frames or 24
    args.train_scenes = args.train_scenes or (QUICK["train_scenes"] if args.quick else 48)
    args.test_scenes = args.test_scenes or (QUICK["test_scenes"] if args.quick else 6)
    train_dir, test_dir = out / f"scenes-train-{args.res}", out / f"scenes-test-{args.res}"
    for folder, count, scene_seed in ((train_dir, args.train_scenes, seed), (test_dir, args.test_scenes, seed + 1)):
        if not (folder / f"scene_{count - 1:04d}" / "transforms_test.json").is_file():
            print(f"ray-tracing {count} random scenes at {args.res}x{args.res} into {folder} ...")
            make_random_scenes(count, folder, seed=scene_seed, res=args.res)
    minutes = args.minutes if args.minutes is not None or args.steps is not None else (
        QUICK["minutes"] if args.quick else 20.0)
    task = PixelNeRFTask(data=str(train_dir), eval_data=str(test_dir))
    summary = train(task, out / "run", steps=args.steps, minutes=minutes, seed=seed, eval_every=0,
                    progress=not args.quiet, device=args.device)
    model = summary["model"]
    test = load_scenes(test_dir, "test")
    table, rows = {}, []
    for views in (1, 2, 3):
        table[views] = evaluate_scenes(model, test, n_views=views, latency_renders=LATENCY_RENDERS)
        scene = test[0]
        sources, targets = scene.choose_views(views)
        rendered = render(model, scene.cameras[targets[0]], views=(scene.images[sources], scene.cameras[sources]))
        rows.append((scene.images[sources], rendered["rgb"].cpu(), scene.images[targets[0]]))
    _figure(rows, out / "views_1_2_3.png")
    scene = test[0]
    sources, _ = scene.choose_views(3)
    reference = load_scenes(test_dir, "train")[0]
    from ..data import Dataset

    orbit = path_cameras(Dataset(reference.images, reference.cameras), "orbit", args.frames,
                         torch.tensor(model.config()["aabb"]))
    frames = render(model, orbit, views=(scene.images[sources], scene.cameras[sources]))["rgb"]
    write_frames(frames, out / "orbit_3_views.gif", 12.0)
    (out / "metrics.json").write_text(json.dumps({"train_seconds": summary["train_seconds"], "steps": summary["steps"],
                                                  "views": {str(k): v for k, v in table.items()}}, indent=2))
    print(f"\nPixelNeRF on {len(test)} unseen scenes ({args.res}x{args.res}), {summary['steps']} steps in "
          f"{summary['train_seconds'] / 60:.1f} min")
    print("views | PSNR  | object PSNR | nearest source | SSIM  | field evals / pixel | latency ms")
    for views, r in table.items():
        print(f"  {views}   | {r['psnr']:.2f} | {r['psnr_masked'] or float('nan'):.2f}       | {r['baseline_psnr']:.2f}"
              f"          | {r['ssim'] or float('nan'):.3f} | {r['evals_per_pixel']:.1f}                | "
              f"{r['latency_ms']:.0f}")
    print(f"wrote {out / 'views_1_2_3.png'}, {out / 'orbit_3_views.gif'}, {out / 'metrics.json'}")
    return 0
