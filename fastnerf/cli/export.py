"""`fastnerf export SRUN --format onnx|pt2 --out FILE [--size WxH]`: a student outside Python."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._shared import add_threads_option, apply_threads


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a student whose kind exports as ONNX or a torch.export program",
        description="Write a student run as an ONNX file (onnxruntime) or a torch.export program (.pt2). "
        "The graph takes c2w [B,4,4] float32 (world frame of the run's dataset; B dynamic) and, for "
        "kinds that render any camera, intrinsics [B,4] = fx, fy, cx, cy in pixels, and returns "
        "rgb [B,H,W,3] in [0,1]. A kind that does not export is refused with its reason. "
        "ONNX needs pip install 'fastnerf[export]'.")
    parser.add_argument("run", metavar="SRUN", help="student run folder or checkpoint file")
    parser.add_argument("--format", choices=("onnx", "pt2"), default="onnx", help="default onnx")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write (.onnx or .pt2)")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="output image size (any for kinds that render any camera; fixed-camera kinds: their "
                        "own only; default: the run's)")
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    import torch

    from ..export import example_inputs, export_model, load_exportable, run_onnx, run_pt2
    from .render import parse_size

    size = parse_size(args.size) if args.size else None
    model, _ = load_exportable(args.run, format=args.format)  # refuses a kind that does not export, unbuilt
    info = export_model(model, args.out, format=args.format, size=size)
    print(f"wrote {info['path']}: {info['kind']} student as {info['format']}, inputs {', '.join(info['inputs'])} "
          f"-> rgb [B,{info['height']},{info['width']},3]")
    # Parity check on two example cameras: the file against the PyTorch model it came from.
    c2w, intrinsics = example_inputs(info["width"], info["height"])
    intrinsics = intrinsics if info["takes_intrinsics"] else None  # a fixed-camera graph takes none
    with torch.no_grad():
        expected = model.eval().export_forward(c2w, intrinsics, **(
            {"height": info["height"], "width": info["width"]} if info["takes_intrinsics"] else {}))
    if args.format == "pt2":
        produced = run_pt2(args.out, c2w, intrinsics)
    else:
        try:
            produced = run_onnx(args.out, c2w, intrinsics)
        except UserError as error:  # onnxruntime missing: the file is written, only the check is skipped
            print(f"(not checked in onnxruntime: {error})")
            return 0
    print(f"checked: max |exported - PyTorch| = {(produced - expected).abs().max().item():.2e} on 2 cameras")
    return 0
