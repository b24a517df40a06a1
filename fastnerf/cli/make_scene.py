"""`fastnerf make-scene NAME OUT`: write a built-in procedural scene in the Blender format."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-scene",
        help="ray-trace a built-in procedural scene into a Blender-format dataset",
        description="Ray-trace a built-in scene (or COUNT random ones with NAME 'random') into OUT, "
        "as RGBA PNGs plus transforms_{train,val,test}.json.",
    )
    parser.add_argument("name", metavar="NAME", help="scene name (see fastnerf.data.procedural.SCENES) or 'random'")
    parser.add_argument("out", metavar="OUT", help="output folder")
    parser.add_argument("--n-train", type=int, default=None, help="training views (default 100; 24 for random)")
    parser.add_argument("--n-val", type=int, default=None, help="validation views (default 10; 0 for random)")
    parser.add_argument("--n-test", type=int, default=None, help="test views on an orbit (default 20; 8 for random)")
    parser.add_argument("--res", type=int, default=None, help="image width and height in pixels (default 100; 64 for random)")
    parser.add_argument("--seed", type=int, default=0, help="seed for camera directions and random scenes")
    parser.add_argument("--count", type=int, default=1, help="number of scenes when NAME is 'random'")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.procedural import SCENES, make_random_scenes, make_scene
    from ..errors import UserError

    options = {key: value for key, value in (("n_train", args.n_train), ("n_val", args.n_val),
                                            ("n_test", args.n_test), ("res", args.res)) if value is not None}
    if args.name == "random":
        paths = make_random_scenes(args.count, args.out, seed=args.seed, **options)
        print(f"wrote {len(paths)} random scene(s) to {args.out}")
        return 0
    if args.name not in SCENES:
        raise UserError(f"unknown scene {args.name!r}; choose one of {', '.join(SCENES)} or 'random'")
    if args.count != 1:
        raise UserError("--count applies only to NAME 'random'")
    path = make_scene(args.name, args.out, seed=args.seed, **options)
    print(f"wrote scene {args.name!r} to {path}")
    return 0
