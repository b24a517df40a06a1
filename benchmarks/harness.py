"""The shared benchmark harness: timing, the copy-bandwidth floor, the table and the results files.

Every benchmark times each backend beside the fast_torch baseline (benchmarks/baselines.py: the
best plain PyTorch, what a user would write without fastnerf) and the readable reference on the
same inputs, and reports the achieved bandwidth (the fewest bytes the op must move over the measured time) as a fraction of
the device's measured copy bandwidth, which is the floor no kernel of a memory-bound op beats.
"""

import csv
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, List, Optional

import torch

import fastnerf

# Relative to where you run it; a source checkout ignores benchmarks/results in git.
RESULTS_DIR = os.path.join("benchmarks", "results")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device, *, warmup: int = 2, repeats: int = 10, budget_s: float = 5.0) -> float:
    """Median seconds of `fn()` after warm-up; repeats stop early once `budget_s` is spent."""
    for _ in range(warmup):
        fn()
    sync(device)
    samples = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and len(samples) >= 3:
            break
    return statistics.median(samples)


_copy_bandwidth = {}


def copy_bandwidth(device, nbytes: int = 256 * 2**20) -> float:
    """Measured bytes/s of a large device copy, counting bytes read plus bytes written."""
    key = str(torch.device(device))
    if key not in _copy_bandwidth:
        src = torch.rand(nbytes // 4, device=device)
        dst = torch.empty_like(src)
        seconds = time_call(lambda: dst.copy_(src), device, warmup=2, repeats=10)
        _copy_bandwidth[key] = 2 * nbytes / seconds
    return _copy_bandwidth[key]


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU x{torch.get_num_threads()} threads"


def commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


@dataclasses.dataclass
class Row:
    op: str
    case: str  # e.g. "65536x64 C=3"
    backend: str
    pass_: str  # "fwd" or "fwd+bwd"
    seconds: float
    bytes_moved: float  # the fewest bytes the pass must move
    items: float  # rays, samples or points processed, for the throughput column
    item_name: str
    device: str
    copy_gbps: float

    @property
    def gbps(self) -> float:
        return self.bytes_moved / self.seconds / 1e9

    @property
    def floor_fraction(self) -> float:
        return self.gbps / self.copy_gbps


@dataclasses.dataclass
class Case:
    """One problem size of one op: how to build inputs and the bytes each pass must move."""

    name: str
    items: float
    item_name: str
    bytes_fwd: float
    bytes_fwd_bwd: Optional[float]  # None: the op has no backward


def measure(op: str, case: Case, device, calls: dict, *, budget_s: float = 5.0) -> List[Row]:
    """Time every backend in `calls`: {backend: {"fwd": fn, "fwd+bwd": fn}}."""
    bandwidth = copy_bandwidth(device) / 1e9
    rows = []
    for backend, passes in calls.items():
        for pass_, fn in passes.items():
            nbytes = case.bytes_fwd if pass_ == "fwd" else case.bytes_fwd_bwd
            seconds = time_call(fn, device, budget_s=budget_s)
            rows.append(Row(op, case.name, backend, pass_, seconds, nbytes, case.items, case.item_name,
                            device_name(device), bandwidth))
    return rows


# The baseline every speed-up is measured against: the fastest plain PyTorch we could write
# (benchmarks/baselines.py). "torch" is fastnerf's readable reference, timed beside it.
FAST_TORCH = "fast_torch"


def backends_to_run(device, only=None) -> List[str]:
    """The fast_torch baseline, the reference, then every fast backend here (triton only on a GPU)."""
    names = [FAST_TORCH, "torch"] + [b for b in fastnerf.backends.available(device) if b != "torch"]
    if torch.device(device).type == "cpu":
        names = [b for b in names if b != "triton"]  # the interpreter is a test tool, not a backend to time
    return [b for b in names if only is None or b in only]


def op_for(backend: str, op: Callable, baseline: Callable) -> Callable:
    """The function that runs `backend`: the baseline for fast_torch, else op(..., backend=backend)."""
    if backend == FAST_TORCH:
        return baseline
    return lambda *args, **kwargs: op(*args, backend=backend, **kwargs)


def format_table(rows: List[Row]) -> str:
    """A plain-text table: each backend's speed-up over the fast_torch baseline ("x fast") and
    over the readable reference ("x ref"), and its share of the copy floor."""
    fast = {(r.op, r.case, r.pass_): r.seconds for r in rows if r.backend == FAST_TORCH}
    reference = {(r.op, r.case, r.pass_): r.seconds for r in rows if r.backend == "torch"}
    header = (f"{'op':<12} {'case':<24} {'pass':<8} {'backend':<10} {'ms':>9} {'x fast':>7} {'x ref':>7} "
              f"{'GB/s':>8} {'% copy':>7} {'throughput':>18}")
    lines = [header, "-" * len(header)]

    def ratio(base):
        return f"{base / r.seconds:6.1f}x" if base else "    -  "

    for r in rows:
        key = (r.op, r.case, r.pass_)
        throughput = f"{r.items / r.seconds / 1e6:8.1f} M{r.item_name}/s"
        lines.append(
            f"{r.op:<12} {r.case:<24} {r.pass_:<8} {r.backend:<10} {r.seconds * 1e3:9.3f} {ratio(fast.get(key)):>7} "
            f"{ratio(reference.get(key)):>7} {r.gbps:8.2f} {100 * r.floor_fraction:6.1f}% {throughput:>18}"
        )
    if rows:
        lines.append(f"x fast: speed-up over {FAST_TORCH} (benchmarks/baselines.py, the best plain PyTorch); "
                     "x ref: over the readable reference (backend 'torch')")
        lines.append(f"device: {rows[0].device}; measured copy bandwidth {rows[0].copy_gbps:.1f} GB/s "
                     f"(read+write); commit {commit()}")
    return "\n".join(lines)


def save(rows: List[Row], name: str, out_dir: str = RESULTS_DIR) -> str:
    """Write rows to <out_dir>/<name>.csv and .json with device, commit and time; returns the CSV path."""
    os.makedirs(out_dir, exist_ok=True)
    meta = {"commit": commit(), "torch": torch.__version__, "fastnerf": fastnerf.__version__,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    records = [{**dataclasses.asdict(r), "gbps": r.gbps, "floor_fraction": r.floor_fraction, **meta} for r in rows]
    csv_path = os.path.join(out_dir, f"{name}.csv")
    with open(csv_path, "w", newline="") as f:
        if records:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(records, f, indent=1)
    return csv_path


def main(op: str, run: Callable, argv=None) -> None:
    """The command line of every bench_<op>.py: --device, --quick, --backends; prints the table, saves results."""
    import argparse

    parser = argparse.ArgumentParser(description=f"Benchmark {op}: every backend beside the reference.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--backends", default=None,
                        help="comma-separated, e.g. fast_torch,torch,cpp (default: all available)")
    args = parser.parse_args(argv)
    rows = run(args.device, quick=args.quick, only=args.backends.split(",") if args.backends else None)
    print(format_table(rows))
    print("wrote", save(rows, f"{op}-{torch.device(args.device).type}"))
