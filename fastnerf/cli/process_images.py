"""`fastnerf process-images PHOTOS --out DATA`: recover the cameras of your photos (or a video)
with pycolmap and write DATA/images + DATA/transforms.json, which `fastnerf train teacher --data
DATA` reads."""

from __future__ import annotations

import argparse

from ._shared import add_threads_option


def add_parser(subparsers) -> None:
    from ..capture.pipeline import DEFAULT_FPS, DEFAULT_MAX_SIZE
    from ..capture.sfm import CAMERA_PARAMS, MATCHING

    parser = subparsers.add_parser(
        "process-images", help="photos or a video -> a posed dataset (structure from motion with pycolmap)",
        description="Find the cameras of PHOTOS (a folder of photos of one camera, or a video) with pycolmap's "
        "SIFT, matching and incremental mapping; write the photos, upright and shrunk, to DATA/images and their "
        "cameras to DATA/transforms.json (Instant-NGP / nerfstudio convention, +Z up, the scene centred), plus "
        "COLMAP's database, model and log in DATA/colmap. Needs pycolmap (pip install 'fastnerf[capture]').")
    parser.add_argument("photos", metavar="PHOTOS", help="folder of photos (.jpg, .png, ...) or a video (.mp4, .mov, ...)")
    parser.add_argument("--out", required=True, metavar="DATA", help="dataset folder to write")
    parser.add_argument("--matching", choices=MATCHING, default="exhaustive",
                        help="which photo pairs to match: every pair (default; best up to a few hundred photos) or "
                        "neighbours in name order (video frames, long walks)")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, metavar="N",
                        help=f"shrink photos so the long side is at most N pixels (default {DEFAULT_MAX_SIZE}); "
                        "0 keeps their size")
    parser.add_argument("--camera-model", choices=tuple(CAMERA_PARAMS), default="OPENCV",
                        help="COLMAP camera model (default OPENCV: focal lengths, principal point, k1 k2 p1 p2); "
                        "OPENCV_FISHEYE for wide-angle lenses, SIMPLE_PINHOLE for undistorted images")
    parser.add_argument("--fps", type=float, default=None, metavar="F",
                        help=f"video only: frames per second to keep, the sharpest of each 1/F s (default {DEFAULT_FPS:g})")
    parser.add_argument("--seed", type=int, default=0, help="COLMAP's random seed")
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..capture import process_images

    process_images(args.photos, args.out, matching=args.matching, max_size=args.max_size or None,
                   camera_model=args.camera_model, fps=args.fps, num_threads=args.threads or -1, seed=args.seed,
                   progress=not args.quiet)
    print(f"next: fastnerf train teacher --data {args.out} --out RUN")
    return 0
