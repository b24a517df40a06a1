"""`fastnerf eval RUN [--data DIR] [--split test] [--json FILE]`: PSNR, SSIM and speed of a run."""

from __future__ import annotations

import argparse
import json

from ..train.denormals import with_flushed_denormals
from ._shared import add_supersample_option, add_threads_option, apply_threads, load_run_and_data


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a trained run on a dataset split",
                                   description="Render every camera of a split and report PSNR, SSIM and "
                                   "seconds per image. Defaults to the run's own dataset and resolution.")
    parser.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    parser.add_argument("--data", default=None, metavar="DIR", help="dataset (default: the run's)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--downscale", type=int, default=None, metavar="K", help="default: the run's")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--backend", default=None)
    add_supersample_option(parser)
    add_threads_option(parser)
    parser.set_defaults(func=run)


@with_flushed_denormals  # denormal weights slow CPU inference several times
def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..train import evaluate

    model, checkpoint, dataset, data, downscale = load_run_and_data(args, args.split)
    result = evaluate(model, dataset, backend=args.backend, supersample=args.supersample)
    figures = {"run": str(args.run), "data": str(data), "split": args.split, "downscale": downscale,
               "width": dataset.width, "height": dataset.height, "psnr": result["psnr"], "ssim": result["ssim"],
               "seconds_per_image": result["seconds_per_image"], "n_images": result["n_images"],
               "samples_per_ray": result["samples_per_ray"], "step": checkpoint["step"],
               "supersample": args.supersample or getattr(model, "supersample", 1)}
    print(f"{args.split}: {result['n_images']} images of {dataset.width}x{dataset.height}  "
          f"PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  "
          f"{result['seconds_per_image']:.3f} s/image  {result['samples_per_ray']:.1f} samples/ray")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0
