"""`fastnerf render RUN --path orbit|spiral|test|FILE.json --out FILE.gif|FILE.mp4|DIR`: images or video of a run.

``--path FILE.json`` renders a camera path file (``fastnerf.camera_path``: what the viewer records)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..camera_path import NAMED_PATHS, is_path_file, path_cameras
from ..errors import UserError
from ..frames import write_frames
from ..options import parse_size
from ..train.denormals import with_flushed_denormals
from ._shared import (add_device_option, add_supersample_option, add_threads_option, apply_threads,
                      load_run_and_data)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a trained run along a camera path",
                                   description="Render a run along an orbit, an LLFF spiral, the test "
                                   "cameras or a camera path file (recorded in `fastnerf view`), into a GIF, an MP4 "
                                   "or a folder of PNGs.")
    parser.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    parser.add_argument("--path", default="orbit", metavar="orbit|spiral|test|FILE.json",
                        help="orbit, LLFF spiral, the test cameras, or a camera path file (default orbit)")
    parser.add_argument("--frames", type=int, default=36, metavar="N", help="frames for orbit/spiral (default 36)")
    parser.add_argument("--size", default=None, metavar="WxH", help="image size (default: the run's)")
    parser.add_argument("--data", default=None, metavar="DIR", help="dataset for the cameras (default: the run's)")
    parser.add_argument("--downscale", type=int, default=None, metavar="K", help="default: the run's")
    parser.add_argument("--scene", default=None, metavar="DIR",
                        help="image-conditioned runs: the scene whose source views condition the render")
    parser.add_argument("--source-views", default=None, metavar="I,J",
                        help="image-conditioned runs: source view indices (default 0)")
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default: the path file's, else 12)")
    parser.add_argument("--out", required=True, metavar="FILE.gif|FILE.mp4|DIR")
    parser.add_argument("--backend", default=None)
    add_device_option(parser)
    add_supersample_option(parser)
    add_threads_option(parser)
    parser.set_defaults(func=run)


@with_flushed_denormals  # denormal weights slow CPU inference several times
def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..rendering import render
    from ._multi_scene import is_multi_scene_run, run_render as run_scene_render

    fps = args.fps
    if fps is not None and not fps > 0:
        raise UserError(f"--fps must be positive, got {fps}")
    if args.path not in NAMED_PATHS and not is_path_file(args.path):
        raise UserError(f"--path {args.path}: use one of {', '.join(NAMED_PATHS)} or a camera path .json file")
    if args.scene is not None or is_multi_scene_run(args.run):
        return run_scene_render(args)

    if is_path_file(args.path):
        from ..camera_path import load_camera_path
        from ..train import load_run

        cameras, file_fps = load_camera_path(args.path)  # before the run: a bad file fails at once
        model, _ = load_run(args.run, device=args.device)
        fps = fps or file_fps
    else:
        model, _, dataset, _, _ = load_run_and_data(args, "test" if args.path == "test" else "train")
        config = model.config()
        aabb = None if config.get("ndc") or config.get("aabb") is None else torch.tensor(config["aabb"])
        cameras = path_cameras(dataset, args.path, args.frames, aabb)
    if args.size:
        cameras = cameras.resize(*parse_size(args.size))
    frames = render(model, cameras, backend=args.backend, supersample=args.supersample)["rgb"]
    write_frames(frames, Path(args.out), fps or 12.0)
    print(f"wrote {frames.shape[0]} frames of {cameras.width}x{cameras.height} to {args.out}")
    return 0
