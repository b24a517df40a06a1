"""`fastnerf render RUN --path orbit|spiral|test|FILE.json --out FILE.gif|FILE.mp4|DIR`: images or video of a run.

``--path FILE.json`` renders a camera path file (``fastnerf.camera_path``: what the viewer records)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ..errors import UserError
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


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 200x150, got {text!r}") from None
    if width < 1 or height < 1 or width * height > 64_000_000:
        raise UserError(f"--size {text}: width and height must be positive (and not absurd)")
    return width, height


NAMED_PATHS = ("orbit", "spiral", "test")


def is_path_file(path: str) -> bool:
    return path not in NAMED_PATHS and (path.lower().endswith(".json") or Path(path).is_file())


def path_cameras(dataset, path: str, frames: int, aabb=None):
    """Cameras along ``path`` for ``dataset`` (its training split): an orbit around the scene,
    an LLFF spiral, or the dataset's own cameras for ``"test"``."""
    from ..cameras import orbit_path, spiral_path

    if frames < 1:
        raise UserError(f"--frames must be positive, got {frames}")
    if path not in NAMED_PATHS:
        raise UserError(f"--path {path}: use one of {', '.join(NAMED_PATHS)} or a camera path .json file")
    cameras = dataset.cameras
    if path == "test":
        return cameras
    if path == "spiral" or dataset.forward_facing:
        near = dataset.near or 1.0
        far = dataset.far or 10.0 * near
        return spiral_path(cameras, frames, near=near, far=far)
    origins = cameras.c2w[:, :3, 3]
    centre = (aabb[:3] + aabb[3:]) / 2 if aabb is not None else torch.zeros(3)
    up = cameras.c2w[:, :3, 1].mean(0)
    up = up / up.norm()
    offsets = origins - centre
    radius = float(offsets.norm(dim=-1).mean())
    elevation = float(torch.rad2deg(torch.asin((offsets @ up / offsets.norm(dim=-1)).clamp(-1, 1))).mean())
    first = cameras[0]
    fov_x = 2 * math.atan(first.width / (2 * float(first.fx)))
    return orbit_path(frames, radius, max(elevation, 5.0), first.width, first.height, fov_x,
                      target=centre.tolist(), up=up.tolist())


def write_frames(frames: torch.Tensor, out: Path, fps: float) -> None:
    """``frames [N,H,W,3]`` in [0,1] to a GIF, an MP4 or a folder of PNGs."""
    import imageio.v2 as imageio
    import numpy as np

    pixels = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    suffix = out.suffix.lower()
    if suffix == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(out, list(pixels), duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserError("writing .mp4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                            "or write a .gif or a folder of PNGs") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        # H.264 in yuv420p needs even sizes: repeat the last row / column rather than let ffmpeg resample
        height, width = pixels.shape[1:3]
        pixels = np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        imageio.mimsave(out, list(pixels), fps=fps, macro_block_size=2)
    elif suffix:
        raise UserError(f"--out {out}: unknown format {suffix!r}; use .gif, .mp4 or a folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(pixels):
            imageio.imwrite(out / f"{index:04d}.png", image)


@with_flushed_denormals  # denormal weights slow CPU inference several times
def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..rendering import render

    from ._pixelnerf import is_multi_scene_run, run_render as run_scene_render

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
