"""`fastnerf info`: what this installation runs on, for a bug report.

Versions (fastnerf, Python, PyTorch, CUDA, Triton), the machine (platform, CPU threads, CUDA
devices), every backend on every device type with "available" or the reason it is not, and how
fastnerf._C was built. `--json` prints the same as one JSON object.
"""

import argparse
import json

DEVICE_TYPES = ("cpu", "cuda")
# Environment variables that change what fastnerf builds or runs.
ENVIRONMENT = ("FASTNERF_BACKEND", "FASTNERF_NO_CUDA", "TRITON_INTERPRET", "TORCH_CUDA_ARCH_LIST",
               "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "info",
        help="versions, devices, backends and build flags (paste it into a bug report)",
        description="Prints the versions of fastnerf, Python, PyTorch, CUDA and Triton, the CPU "
        "threads and CUDA devices, whether each backend is available on each device type (and "
        "why not), and what fastnerf._C was built with.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.set_defaults(func=run)


def collect() -> dict:
    """Everything `fastnerf info` reports, as plain values."""
    import os
    import platform
    import sys

    import torch

    import fastnerf
    from fastnerf import _build, _native, backends

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    devices = [
        {"name": f"cuda:{i}", "model": torch.cuda.get_device_name(i),
         "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
         "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)
    ]
    return {
        "fastnerf": {"version": fastnerf.__version__, "path": os.path.dirname(fastnerf.__file__)},
        "python": f"{platform.python_version()} ({platform.python_implementation()}) {sys.executable}",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton_version,
        "cpu_threads": {"torch": torch.get_num_threads(), "cpus": os.cpu_count()},
        "cuda_devices": devices,
        "no_cuda_reason": backends.no_cuda_reason(),
        "backends": {
            device_type: {name: backends.unavailable_reason(name, device_type) or "available"
                          for name in backends.NAMES}
            for device_type in DEVICE_TYPES
        },
        # What backend=None picks (FASTNERF_BACKEND, if set, overrides it).
        "default_backend": {device_type: (backends.available(device_type) or [None])[0]
                            for device_type in DEVICE_TYPES},
        "native": {
            "load_error": _native.load_error(),
            "built_with_cuda": _native.built_with_cuda() if _native.available() else None,
            "build_info": _native.build_info(),
        },
        # What a build from this checkout would use now (fastnerf/_build.py).
        "build_flags": {"cxx": _build.CXX_FLAGS, "nvcc": _build.NVCC_FLAGS,
                        "cuda_sources": _build.want_cuda()},
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
    }


def format_text(info: dict) -> str:
    lines = [
        f"fastnerf   {info['fastnerf']['version']} ({info['fastnerf']['path']})",
        f"python     {info['python']}",
        f"platform   {info['platform']}",
        f"torch      {info['torch']} (CUDA {info['torch_cuda'] or 'none: CPU-only build'})",
        f"triton     {info['triton'] or 'not installed'}",
        f"threads    {info['cpu_threads']['torch']} torch threads, {info['cpu_threads']['cpus']} CPUs",
    ]
    if info["cuda_devices"]:
        for device in info["cuda_devices"]:
            lines.append(f"device     {device['name']}: {device['model']}, {device['memory_gib']} GiB, "
                         f"compute capability {device['capability']}")
    else:
        lines.append(f"device     {info['no_cuda_reason']}")
    native = info["native"]
    if native["load_error"]:
        lines.append(f"fastnerf._C  not loaded: {native['load_error']}")
    else:
        built = {key: value for key, value in (native["build_info"] or {}).items() if value is not None}
        described = ", ".join(f"{key} {_plain(value)}" for key, value in sorted(built.items())) or (
            "not recorded (a library built before fastnerf recorded its build)")
        lines.append(f"fastnerf._C  loaded, built with CUDA: {'yes' if native['built_with_cuda'] else 'no'}")
        lines.append(f"  built with: {described}")
    flags = info["build_flags"]
    lines.append(f"build flags now: cxx {' '.join(flags['cxx'])}; nvcc {' '.join(flags['nvcc'])}; "
                 f"CUDA sources {'built' if flags['cuda_sources'] else 'skipped (no nvcc or CPU torch, or FASTNERF_NO_CUDA=1)'}")
    lines.append("backends")
    for device_type, reasons in info["backends"].items():
        default = info["default_backend"][device_type]
        lines.append(f"  {device_type} (backend=None picks: {default or 'none'})")
        if len(set(reasons.values())) == 1 and "available" not in reasons.values():  # e.g. no CUDA device
            lines.append(f"    {'all':<7} {next(iter(reasons.values()))}")
            continue
        for name, reason in reasons.items():
            lines.append(f"    {name:<7} {reason}")
    environment = info["environment"]
    lines.append("environment  " + (" ".join(f"{k}={v}" for k, v in environment.items()) or "(none set)"))
    return "\n".join(lines)


def _plain(value):
    return " ".join(value) if isinstance(value, list) else value


def run(args: argparse.Namespace) -> int:
    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
