"""`fastnerf demo [WHICH] [--out DIR] [--quick]`: the README's main command.

``WHICH`` names a demo (default ``students``): each lives in its own module of this package,
``_demo_<which>.py``, with ``run(args) -> int`` and, optionally, ``add_arguments(parser)`` for
options of its own (in an argument group of its name; it must not re-add the shared ones below).
This file only finds them and holds the options they share, whose defaults (``None``) each demo
reads as its own.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from ._shared import add_threads_option, apply_threads

DEFAULT_DEMO = "students"
PREFIX = "_demo_"


def available_demos() -> list[str]:
    folder = Path(__file__).parent
    return sorted(m.name[len(PREFIX):] for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith(PREFIX))


def _module(which: str):
    return importlib.import_module(f"{__package__}.{PREFIX}{which}")


def add_parser(subparsers) -> None:
    demos = available_demos()
    parser = subparsers.add_parser(
        "demo", help="built-in scene -> teacher -> students: a comparison table and GIF, in minutes",
        description="Run a demo end to end on built-in scenes. " + " ".join(
            f"'{name}': {' '.join((_module(name).__doc__ or '').split(chr(10) * 2)[0].split())}" for name in demos))
    parser.add_argument("which", nargs="?", default=DEFAULT_DEMO, choices=demos, metavar="WHICH",
                        help=f"which demo: {', '.join(demos)} (default {DEFAULT_DEMO})")
    parser.add_argument("--out", default="fastnerf-demo", metavar="DIR", help="output folder (default fastnerf-demo)")
    parser.add_argument("--quick", action="store_true", help="shorter budgets (students: about 4 minutes in all)")
    parser.add_argument("--device", default=None, metavar="D", help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scene", default=None, help="built-in scene (default: the demo's)")
    parser.add_argument("--res", type=int, default=None, metavar="R", help="image size R x R (default: the demo's)")
    parser.add_argument("--frames", type=int, default=None, metavar="N", help="orbit GIF frames (default: the demo's)")
    parser.add_argument("--minutes", type=float, default=None, metavar="M",
                        help="main model's training minutes (students demo: the teacher's, default 3; quick 1)")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="main model's training steps instead")
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    for name in demos:
        module = _module(name)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return int(_module(args.which).run(args) or 0)
