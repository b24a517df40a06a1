"""`fastnerf train TASK --out RUN ...`: train any model kind on the engine (one sub-command per task).

The options every task shares (budget, seed, resume, device, progress) are added here; each task
adds its own (``Task.add_arguments``). Under ``torchrun --nproc_per_node=N -m fastnerf train ...``
every process runs this, the engine joins them, and rank 0 alone writes and prints.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ._shared import add_device_option, add_threads_option, add_viewer_options, apply_threads

DEFAULT_MINUTES = 5.0


def add_parser(subparsers) -> None:
    from ..train.tasks import discover_tasks

    parser = subparsers.add_parser("train", help="train a model (one sub-command per training task)",
                                   description="Train a model on the training engine; checkpoints, train.json "
                                   "and progress go to RUN. Runs resume exactly (--resume), also under torchrun.")
    kinds = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, task in sorted(discover_tasks().items()):
        doc = (task.__doc__ or name).strip().splitlines()[0]
        sub = kinds.add_parser(name, help=doc, description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # keeps one line per kind
        task.add_arguments(sub)
        # A resumed run takes its settings from the checkpoint: what a task requires is required
        # only for a new run (checked in run()).
        needed = []
        for action in sub._actions:
            if action.required and action.option_strings:
                action.required = False
                action.help = f"{action.help or ''} (required unless --resume)".strip()
                needed.append((action.dest, action.option_strings[0]))
        _add_engine_arguments(sub)
        sub.set_defaults(func=run, task_class=task, needed=needed)


def _add_engine_arguments(parser) -> None:
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoint.pt, train.json)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, metavar="M",
                        help=f"wall-time budget, everything included (default {DEFAULT_MINUTES:g})")
    budget.add_argument("--steps", type=int, default=None, metavar="N", help="step budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN exactly where it stopped (its own settings; a new budget may be given)")
    parser.add_argument("--eval-every", type=int, default=500, metavar="N", help="cheap held-out check every N steps")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="checkpoint every N steps")
    parser.add_argument("--backend", default=None, help="op backend (default: fastest available)")
    add_device_option(parser)
    add_threads_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--viewer", action="store_true",
                        help="serve the web viewer on the model as it trains (rank 0 only; stays up after "
                        "training until Ctrl-C)")
    add_viewer_options(parser)
    parser.add_argument("--viewer-resolution", type=int, default=256, metavar="PIXELS",
                        help="longer side of the viewer's image once the camera rests (default 256: it shares "
                        "the machine with training)")


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from ..errors import UserError
    from ..train.engine import train

    minutes, steps = args.minutes, args.steps
    if minutes is None and steps is None and not args.resume:
        minutes = DEFAULT_MINUTES
    missing = [flag for dest, flag in args.needed if getattr(args, dest) is None]
    if missing and not args.resume:
        raise UserError(f"train {args.model}: {', '.join(missing)} required (unless --resume continues a run)")
    live = None
    if args.viewer and int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 serves
        from ..viewer.live import LiveView

        if args.viewer_resolution < 16:
            raise UserError(f"--viewer-resolution must be at least 16 pixels, got {args.viewer_resolution}")
        live = LiveView(f"{Path(args.out).name} ({args.model}, training)", host=args.host, port=args.port,
                        resolution=args.viewer_resolution)
    task = None if args.resume else args.task_class.from_args(args)
    try:
        summary = train(task, args.out, steps=steps, minutes=minutes, seed=args.seed, resume=args.resume,
                        device=args.device, backend=args.backend, eval_every=args.eval_every,
                        checkpoint_every=args.checkpoint_every, progress=not args.quiet,
                        on_step=None if live is None else live.on_step)
        _report(summary, args)
        if live is not None:
            _keep_viewing(live, summary["model"])
    finally:
        if live is not None:
            live.stop()
    return 0


def _keep_viewing(live, model) -> None:
    live.finish(model)
    if live.viewer is None:
        return
    print(f"training finished; the viewer stays at {live.viewer.url} until Ctrl-C", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("viewer: stopping", flush=True)


def _report(summary: dict, args: argparse.Namespace) -> None:
    if summary["rank"] == 0:
        held_out = summary["held_out_psnr"]
        ranks = f" on {summary['world_size']} processes" if summary["world_size"] > 1 else ""
        rate = summary["samples_per_second"]  # 0 for kinds whose steps count no ray samples
        print(f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s{ranks} on {summary['device']}"
              f"{f' ({rate / 1e3:.0f}k samples/s)' if rate else ''}; "
              f"held-out PSNR {'n/a' if held_out is None else f'{held_out:.2f} dB'}; checkpoint in {args.out}",
              flush=True)
