"""`fastnerf eval RUN [--data DIR] [--split test] [--json FILE]`: PSNR, SSIM and latency of a run.

``latency_ms`` is timed one way for every model kind (``fastnerf.timing``): the mean of
``fastnerf.render`` on the first camera of the split, at batch 1, default settings, after warm-up.
"""

from __future__ import annotations

import argparse
import json

from ..train.denormals import with_flushed_denormals
from ._shared import (add_device_option, add_supersample_option, add_threads_option, apply_threads,
                      load_run_and_data)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a trained run on a dataset split",
                                   description="Render every camera of a split and report PSNR, SSIM and "
                                   "latency_ms (the mean of 100 renders of its first camera). Defaults to the run's own dataset and resolution.")
    parser.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    parser.add_argument("--data", default=None, metavar="DIR", help="dataset (default: the run's)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--downscale", type=int, default=None, metavar="K", help="default: the run's")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--dense-samples", type=int, default=None, metavar="N",
                        help="render as the original volume renderer (Mildenhall et al. 2020): N evenly spaced "
                        "samples per ray, no occupancy grid, no early termination (256 = its 64 coarse + 192 fine)")
    parser.add_argument("--views", type=int, default=None, metavar="K",
                        help="image-conditioned runs: K source views per held-out scene (default 1)")
    parser.add_argument("--source-views", default=None, metavar="I,J",
                        help="image-conditioned runs: these view indices as sources (e.g. SRN 64,104; DTU 22,25,28)")
    parser.add_argument("--latency-renders", type=int, default=100, metavar="N",
                        help="timed renders for latency_ms (default 100; 5 for a renderer slower than 1 s)")
    parser.add_argument("--onnx", default=None, metavar="FILE",
                        help="also time FILE (`fastnerf export` of this run) in onnxruntime: onnx_latency_ms, "
                        "same protocol as latency_ms")
    add_device_option(parser)
    add_supersample_option(parser)
    add_threads_option(parser)
    parser.set_defaults(func=run)


@with_flushed_denormals  # denormal weights slow CPU inference several times
def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    if args.onnx:  # before minutes of evaluation, not after
        from ..export import check_onnx_file

        check_onnx_file(args.onnx)
    import torch

    from ._multi_scene import is_multi_scene_run, run_eval as run_multi_scene_eval

    if args.views is not None or args.source_views is not None or is_multi_scene_run(args.run):
        return run_multi_scene_eval(args)

    from ..rendering import model_device
    from ..timing import latency_ms
    from ..train import evaluate

    model, checkpoint, dataset, data, downscale = load_run_and_data(args, args.split)
    options = {"supersample": args.supersample, "dense_samples": args.dense_samples}
    result = evaluate(model, dataset, backend=args.backend, **options)
    timing = latency_ms(model, dataset.cameras[0], repeats=args.latency_renders, backend=args.backend, **options)
    figures = {"run": str(args.run), "kind": checkpoint["model_kind"], "data": str(data), "split": args.split,
               "downscale": downscale, "width": dataset.width, "height": dataset.height, "psnr": result["psnr"],
               "ssim": result["ssim"], "latency_ms": timing["latency_ms"], "latency_renders": timing["renders"],
               "n_images": result["n_images"], "samples_per_ray": result["samples_per_ray"],
               "step": checkpoint["step"], "device": str(model_device(model)), "threads": torch.get_num_threads(),
               "supersample": args.supersample or getattr(model, "supersample", 1), "dense_samples": args.dense_samples}
    teacher_run = (checkpoint.get("dataset") or {}).get("teacher")  # students: also against their teacher
    if teacher_run:
        from ..distill.diagnostics import psnr_vs_teacher

        figures["psnr_vs_teacher"] = psnr_vs_teacher(teacher_run, result["images"], dataset.cameras[:result["n_images"]],
                                                     background=dataset.background, backend=args.backend)
    if args.onnx:
        from ..export import camera_inputs, onnx_latency_ms

        figures["onnx_latency_ms"] = onnx_latency_ms(args.onnx, *camera_inputs(dataset.cameras[0]),
                                                     repeats=args.latency_renders)
        print(f"onnxruntime: {figures['onnx_latency_ms']:.2f} ms (mean of {args.latency_renders} runs of {args.onnx})")
    print(f"{args.split}: {result['n_images']} images of {dataset.width}x{dataset.height}  "
          f"PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  latency {timing['latency_ms']:.2f} ms "
          f"(mean of {timing['renders']} renders on {figures['device']})  {result['samples_per_ray']:.1f} samples/ray"
          + (f"  PSNR vs teacher {figures['psnr_vs_teacher']:.2f} dB" if teacher_run else ""))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0
