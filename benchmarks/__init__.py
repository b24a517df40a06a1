"""Kernel microbenchmarks: `fastnerf bench` or `python -m benchmarks.bench_<op>`."""
