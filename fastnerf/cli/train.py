"""`fastnerf train teacher --data DIR --out RUN ...`: train the NeRF teacher (students join later)."""

from __future__ import annotations

import argparse

from ._shared import add_threads_option, apply_threads


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model (teacher)", description="Train a model.")
    kinds = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    teacher = kinds.add_parser(
        "teacher",
        help="the NeRF teacher (hash or frequency encoding)",
        description="Train the NeRF teacher on a Blender, Instant-NGP/nerfstudio or LLFF dataset; "
        "checkpoints, train.json and progress go to RUN.",
    )
    teacher.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    teacher.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoint.pt, train.json)")
    teacher.add_argument("--downscale", type=int, default=1, metavar="K", help="shrink images by K (default 1)")
    budget = teacher.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, metavar="M", help="time budget (default 5)")
    budget.add_argument("--steps", type=int, default=None, metavar="N", help="step budget")
    teacher.add_argument("--encoding", choices=("hash", "frequency"), default="hash")
    teacher.add_argument("--seed", type=int, default=0)
    teacher.add_argument("--resume", action="store_true", help="continue RUN exactly where it stopped")
    teacher.add_argument("--eval-every", type=int, default=500, metavar="N", help="held-out PSNR every N steps")
    teacher.add_argument("--backend", default=None, help="op backend (default: fastest available)")
    add_threads_option(teacher)
    teacher.add_argument("--quiet", action="store_true", help="no progress bar")
    teacher.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..train import train_teacher

    minutes = args.minutes if args.minutes is not None or args.steps is not None else 5.0
    summary = train_teacher(args.data, args.out, encoding=args.encoding, steps=args.steps, minutes=minutes,
                            downscale=args.downscale, seed=args.seed, resume=args.resume,
                            eval_every=args.eval_every, backend=args.backend, progress=not args.quiet)
    held_out = summary["held_out_psnr"]
    print(f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s "
          f"({summary['samples_per_second'] / 1e3:.0f}k samples/s); "
          f"held-out PSNR {'n/a' if held_out is None else f'{held_out:.2f} dB'}; checkpoint in {args.out}")
    return 0
