"""`fastnerf view RUN [RUN ...] [--host H] [--port P]`: look at runs in the browser while you move."""

from __future__ import annotations

import argparse
import time

from ._shared import add_device_option, add_threads_option, add_viewer_options, apply_threads


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("view", help="interactive web viewer for trained runs",
                                   description="Serve a web page that renders the browser's camera with the "
                                   "runs given (a dropdown switches runs and colour/depth/opacity), draws the "
                                   "training cameras, saves PNGs and records camera paths for `fastnerf render "
                                   "--path FILE`. On a remote machine: ssh -L 7007:127.0.0.1:7007 HOST.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoint files")
    add_viewer_options(parser)
    parser.add_argument("--resolution", type=int, default=512, metavar="PIXELS",
                        help="longer side of the image once the camera rests (default 512; a slider changes it)")
    parser.add_argument("--paths", default=".", metavar="DIR", help="where recorded camera paths go (default .)")
    parser.add_argument("--scene", default=None, metavar="DIR",
                        help="image-conditioned runs: the scene to show (default: the first of the run's dataset)")
    parser.add_argument("--source-views", default=None, metavar="I,J",
                        help="image-conditioned runs: the views that condition the render (default 0)")
    add_device_option(parser)
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..data.scene_loading import parse_source_views
    from ..errors import UserError
    from ..viewer import Viewer, check_port_free, load_viewed_run
    from ..viewer.sources import run_name

    if args.resolution < 16:
        raise UserError(f"--resolution must be at least 16 pixels, got {args.resolution}")
    check_port_free(args.host, args.port)  # before loading runs, which can take a while
    names = [run_name(r) for r in args.runs]
    source_views = parse_source_views(args.source_views)
    sources = [load_viewed_run(r, device=args.device, name=None if names.count(run_name(r)) == 1 else str(r),
                               scene=args.scene if _conditioned(r) else None,
                               source_views=source_views if _conditioned(r) else None)
               for r in args.runs]
    viewer = Viewer(sources, host=args.host, port=args.port, resolution=args.resolution, path_dir=args.paths)
    print(f"fastnerf view: {viewer.url} ({len(sources)} run{'s' if len(sources) > 1 else ''}; Ctrl-C stops)",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("fastnerf view: stopping", flush=True)
    finally:
        viewer.stop()
    return 0


def _conditioned(run) -> bool:
    from ._multi_scene import is_multi_scene_run

    return is_multi_scene_run(run)
