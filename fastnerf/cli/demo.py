"""`fastnerf demo [WHICH] [options]`: the README's main command.

``WHICH`` names a demo (default ``students``): each lives in its own module of this package,
``_demo_<which>.py``, with ``run(args) -> int`` (or ``demo(args)``) and, optionally,
``add_arguments(parser)`` for its options. Demos may declare the same option (``--out``,
``--res``, ...) with defaults of their own: the dispatcher adds each option once, without a
default, and fills in the chosen demo's defaults after parsing (``_Options``). ``--device``,
``--seed``, ``--threads``, ``--quiet`` and ``--quick`` are shared and added here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from ._shared import add_threads_option, apply_threads

DEFAULT_DEMO = "students"
PREFIX = "_demo_"
_DEFAULTS: dict = {}  # demo -> {dest: default} of the options it declared


def available_demos() -> list[str]:
    folder = Path(__file__).parent
    return sorted(m.name[len(PREFIX):] for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith(PREFIX))


def _module(which: str):
    return importlib.import_module(f"{__package__}.{PREFIX}{which}")


def _dest(flags, kwargs) -> str:
    if "dest" in kwargs:
        return kwargs["dest"]
    long = next((f for f in flags if f.startswith("--")), flags[0])
    return long.lstrip("-").replace("-", "_")


class _Options:
    """The parser a demo module's ``add_arguments`` sees: an option a demo already added is shared
    (not added twice), every option is added without a default, and the module's defaults are
    kept in ``_DEFAULTS[demo]`` for ``run`` to fill in."""

    def __init__(self, target, demo: str, seen: set):
        self.target, self.demo, self.seen = target, demo, seen

    def add_argument(self, *flags, **kwargs):
        dest = _dest(flags, kwargs)
        action = kwargs.get("action")
        fallback = False if action == "store_true" else True if action == "store_false" else None
        _DEFAULTS.setdefault(self.demo, {})[dest] = kwargs.pop("default", fallback)
        if dest in self.seen:
            return None
        self.seen.add(dest)
        return self.target.add_argument(*flags, default=None, **kwargs)

    def add_mutually_exclusive_group(self, **kwargs):
        return _Options(self.target.add_mutually_exclusive_group(**kwargs), self.demo, self.seen)

    def add_argument_group(self, *args, **kwargs):
        return _Options(self.target.add_argument_group(*args, **kwargs), self.demo, self.seen)


def add_parser(subparsers) -> None:
    demos = available_demos()
    parser = subparsers.add_parser(
        "demo", help="built-in scene -> teacher -> students: a comparison table and GIF, in minutes",
        description="Run a demo end to end on built-in scenes. " + " ".join(
            f"'{name}': {' '.join((_module(name).__doc__ or '').split(chr(10) * 2)[0].split())}" for name in demos))
    parser.add_argument("which", nargs="?", default=DEFAULT_DEMO, choices=demos, metavar="WHICH",
                        help=f"which demo: {', '.join(demos)} (default {DEFAULT_DEMO})")
    parser.add_argument("--quick", action="store_true", help="shorter budgets (students: about 4 minutes in all)")
    parser.add_argument("--device", default=None, metavar="D", help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    seen = {"which", "quick", "device", "seed", "threads", "quiet", "help"}
    for name in sorted(demos, key=lambda d: d != DEFAULT_DEMO):  # the default demo's help texts first
        module = _module(name)
        if hasattr(module, "add_arguments"):
            group = parser.add_argument_group(f"{name} demo", "(options named above take this demo's defaults)"
                                              if name != DEFAULT_DEMO else None)
            module.add_arguments(_Options(group, name, seen))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    for dest, default in _DEFAULTS.get(args.which, {}).items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, default)
    module = _module(args.which)
    entry = getattr(module, "run", None) or getattr(module, "demo")
    return int(entry(args) or 0)
