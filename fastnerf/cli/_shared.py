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


DEFAULT_VIEWER_PORT = 7007  # fastnerf.viewer.DEFAULT_PORT (not imported: --help stays instant)


def add_viewer_options(parser: argparse.ArgumentParser) -> None:
    """``--host`` and ``--port`` of the web viewer (``fastnerf view``, ``fastnerf train --viewer``)."""
    parser.add_argument("--host", default="127.0.0.1", metavar="HOST",
                        help="viewer address (default 127.0.0.1: this machine only; from elsewhere, an SSH tunnel: "
                        f"ssh -L {DEFAULT_VIEWER_PORT}:127.0.0.1:{DEFAULT_VIEWER_PORT} HOST)")
    parser.add_argument("--port", type=int, default=DEFAULT_VIEWER_PORT, metavar="PORT",
                        help=f"viewer port (default {DEFAULT_VIEWER_PORT}); a port in use is an error")
