"""`fastnerf bench`: run the kernel microbenchmarks and print one table."""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="kernel microbenchmarks: every backend beside the reference and the copy floor",
        description="Times every available backend of each op beside the PyTorch reference, with "
        "achieved GB/s as a fraction of the measured copy bandwidth. Writes CSV/JSON with the "
        "device name and commit.",
    )
    parser.add_argument("--ops", default=None, help="comma-separated ops (default: all), e.g. composite,march_rays")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--out", default=None, help="folder for the CSV/JSON results (default: benchmarks/results)")
    parser.set_defaults(func=run)


def available_benchmarks():
    """{op name: module} for every benchmarks/bench_<op>.py."""
    import importlib
    import pkgutil

    benchmarks = _benchmarks_package()
    found = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name.startswith("bench_"):
            found[info.name[len("bench_"):]] = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
    return found


def _benchmarks_package():
    import importlib

    try:  # installed: benchmarks/ ships as fastnerf.benchmarks
        return importlib.import_module("fastnerf.benchmarks")
    except ImportError:  # a source checkout on sys.path
        return importlib.import_module("benchmarks")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UserError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to PyTorch")
    benchmarks = available_benchmarks()
    names = sorted(benchmarks) if args.ops is None else [n.strip() for n in args.ops.split(",") if n.strip()]
    unknown = [n for n in names if n not in benchmarks]
    if unknown:
        raise UserError(f"--ops: unknown {unknown}; available: {sorted(benchmarks)}")

    harness = _benchmarks_package().harness
    rows = []
    for name in names:
        print(f"benchmarking {name} on {device} ...", flush=True)
        rows += benchmarks[name].run(device, quick=args.quick)
    print()
    print(harness.format_table(rows))
    kwargs = {"out_dir": args.out} if args.out else {}
    print("\nresults:", harness.save(rows, f"bench-{torch.device(device).type}", **kwargs))
    return 0
