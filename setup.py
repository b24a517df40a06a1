"""Builds fastnerf and its native library fastnerf._C against the PyTorch already installed.

    pip install --no-build-isolation -e .      # develop
    pip install --no-build-isolation .         # install

--no-build-isolation matters: the extension must be compiled against *your* torch, and an
isolated build would download a different (multi-gigabyte) one.

FASTNERF_SKIP_EXT=1 installs the Python package without building fastnerf._C; scripts/dev-env.sh
uses it and then builds the extension with `setup.py build_ext --inplace`, whose objects stay in
./build so later builds are incremental (pip's editable build compiles in a temporary folder
that it deletes, so every `pip install -e .` recompiles everything).
"""

import importlib.util
import os
import sys

from setuptools import find_packages, setup

try:
    import torch  # noqa: F401
    from torch.utils.cpp_extension import BuildExtension
except ImportError:
    sys.exit(
        "fastnerf builds against the installed PyTorch, and none was found in this environment.\n"
        "Install torch first (CPU: pip install torch==2.13.0), then: pip install --no-build-isolation ."
    )

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("fastnerf_build", os.path.join(HERE, "fastnerf", "_build.py"))
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# kernels/ and benchmarks/ live at the top of the repository and install inside the package.
packages = find_packages(include=["fastnerf", "fastnerf.*"]) + ["fastnerf.kernels", "fastnerf.benchmarks"]

setup(
    name="fastnerf",
    version="0.1.0",
    description="Fused kernels and learned renderers for neural radiance fields",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"fastnerf.kernels": "kernels", "fastnerf.benchmarks": "benchmarks"},
    ext_modules=[] if os.environ.get("FASTNERF_SKIP_EXT", "0") == "1" else [build.extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    # imageio-ffmpeg ships its own ffmpeg binary, so `render --out orbit.mp4` works on a fresh install.
    install_requires=["torch>=2.4", "numpy", "imageio>=2.20", "imageio-ffmpeg>=0.5", "tqdm", "pillow"],
    extras_require={
        "triton": ["triton>=3.0"],
        "test": ["pytest>=8", "hypothesis>=6.100", "expecttest", "triton>=3.0",
                 "pycolmap>=3.10", "viser>=1.0", "playwright>=1.40"],
        # `fastnerf process-images`: SfM (SIFT, matching, mapping) on the CPU.
        "capture": ["pycolmap>=3.10"],
        # `fastnerf view` and `train --viewer`: a web viewer served by viser.
        "viewer": ["viser>=1.0"],
        "export": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"],
    },
    entry_points={"console_scripts": ["fastnerf=fastnerf.cli:main"]},
    zip_safe=False,
)
