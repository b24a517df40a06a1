"""Test session setup: Triton runs under its interpreter where there is no GPU, hypothesis
profiles, the `gpu` marker (skipped without CUDA), and the shared tiny teacher config and tiny
scene (``tiny.py``)."""

import os

import torch

# Must happen before any Triton kernel module is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_teacher_config():
    """The tiny NeRF teacher config (read-only; ``{**tiny_teacher_config, ...}`` to vary it)."""
    from tiny import TINY_TEACHER

    return TINY_TEACHER


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """One tiny procedural scene for the session (``tiny.make_tiny_scene``); copy it before changing it."""
    from tiny import make_tiny_scene

    return make_tiny_scene(tmp_path_factory.mktemp("tiny_scene"))
