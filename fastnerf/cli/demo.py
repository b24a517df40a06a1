"""`fastnerf demo [--out DIR]`: make the default built-in scene, train the teacher, evaluate,
write an orbit GIF and test images, print a table. The README's main-job command."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ._shared import add_threads_option, apply_threads


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="built-in scene -> trained teacher -> orbit GIF, in minutes",
                                   description="Ray-trace a built-in scene, train the NeRF teacher on it, "
                                   "evaluate on the held-out orbit and write orbit.gif and test images to DIR.")
    parser.add_argument("--out", default="fastnerf-demo", metavar="DIR", help="output folder (default fastnerf-demo)")
    parser.add_argument("--scene", default=None, help="built-in scene (default: the first of SCENES)")
    parser.add_argument("--res", type=int, default=100, metavar="R", help="image size R x R (default 100)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, metavar="M", help="training time (default 3)")
    budget.add_argument("--steps", type=int, default=None, metavar="N", help="training steps instead of time")
    parser.add_argument("--encoding", choices=("hash", "frequency"), default="hash")
    parser.add_argument("--frames", type=int, default=36, help="orbit GIF frames (default 36)")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    import imageio.v2 as imageio
    import torch

    from ..data import load
    from ..data.procedural import SCENES, make_scene
    from ..errors import UserError
    from ..rendering import render
    from ..train import evaluate, train_teacher
    from .render import path_cameras, write_frames

    scene = args.scene or SCENES[0]
    if scene not in SCENES:
        raise UserError(f"unknown scene {scene!r}; built-in scenes are: {', '.join(SCENES)}")
    if args.res < 16:
        raise UserError(f"--res must be at least 16, got {args.res}")
    out = Path(args.out)
    data = out / f"data-{scene}-{args.res}"
    if not (data / "transforms_test.json").is_file():
        print(f"ray-tracing scene {scene!r} at {args.res}x{args.res} into {data} ...")
        make_scene(scene, data, n_train=100, n_val=4, n_test=10, res=args.res, seed=args.seed)
    minutes = args.minutes if args.minutes is not None or args.steps is not None else 3.0
    summary = train_teacher(data, out / "run", encoding=args.encoding, steps=args.steps, minutes=minutes,
                            seed=args.seed, eval_every=0, progress=not args.quiet)
    model = summary["model"]
    test = load(data, "test")
    result = evaluate(model, test)
    images = out / "test"
    images.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(result["images"]):
        pair = torch.cat([image, test.images[index]], dim=1)  # render | ground truth
        imageio.imwrite(images / f"{index:03d}.png", (pair * 255 + 0.5).to(torch.uint8).numpy())
    train = load(data, "train")
    start = time.perf_counter()
    frames = render(model, path_cameras(train, "orbit", args.frames, model.aabb))["rgb"]
    orbit_seconds = time.perf_counter() - start
    write_frames(frames, out / "orbit.gif", fps=12)
    row = {"scene": scene, "encoding": args.encoding, "res": args.res, "steps": summary["steps"],
           "train_s": round(summary["train_seconds"], 1), "psnr": round(result["psnr"], 2),
           "ssim": round(result["ssim"], 4), "s_per_image": round(result["seconds_per_image"], 3),
           "samples_per_ray": round(result["samples_per_ray"], 1),
           "train_samples_per_s": round(summary["samples_per_second"]), "orbit_s": round(orbit_seconds, 1)}
    (out / "demo.json").write_text(json.dumps(row, indent=2))
    header = ("scene", "encoding", "steps", "train s", "PSNR", "SSIM", "s/image", "samples/ray")
    values = (scene, args.encoding, summary["steps"], f"{row['train_s']:.0f}", f"{row['psnr']:.2f}",
              f"{row['ssim']:.3f}", f"{row['s_per_image']:.3f}", f"{row['samples_per_ray']:.1f}")
    widths = [max(len(str(h)), len(str(v))) for h, v in zip(header, values)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join(str(v).ljust(w) for v, w in zip(values, widths)))
    print(f"wrote {out / 'orbit.gif'} ({args.frames} frames), {len(result['images'])} test images "
          f"(render | truth) in {images}, checkpoint in {out / 'run'}")
    return 0
