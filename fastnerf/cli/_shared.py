"""Pieces several sub-commands share (the dispatcher skips modules whose names start with _)."""

import argparse


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="T",
                        help="CPU threads (default: torch's; 1 is fastest on a machine shared with other jobs)")


def add_supersample_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supersample", type=int, default=None, metavar="S",
                        help="rays per pixel side, averaged (default: the factor the run was trained with; "
                        "1 renders S^2 times faster, aliased)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, metavar="D",
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def load_run_and_data(args: argparse.Namespace, split: str):
    """(model, checkpoint, dataset, data path, downscale): the run's model and a split of its own
    dataset at its training resolution, unless --data / --downscale say otherwise."""
    from ..data import load
    from ..runs import load_run

    model, checkpoint = load_run(args.run, device=getattr(args, "device", None))
    info = checkpoint.get("dataset", {})
    data = args.data or info.get("path")
    downscale = args.downscale or info.get("downscale", 1)
    return model, checkpoint, load(data, split, downscale=downscale), data, downscale
