"""`fastnerf <command>`: one module per sub-command in this package.

Each module defines ``add_parser(subparsers)`` that registers its sub-command and sets
``func`` to a callable taking the parsed arguments. Heavy imports happen inside ``func`` so
``fastnerf --help`` stays instant.
"""

import argparse
import importlib
import pkgutil
import sys

from ..errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnerf", description="Fast neural radiance fields.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"fastnerf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastnerf {args.command}: interrupted", file=sys.stderr)
        return 130
