"""The backend registry: availability, automatic choice, FASTNERF_BACKEND, clear errors."""

import subprocess
import sys

import pytest
import torch

import fastnerf
from fastnerf import backends


def test_reference_and_cpp_available_on_cpu():
    names = backends.available("cpu")
    assert "torch" in names
    assert "cpp" in names, f"fastnerf._C did not load: {fastnerf._native.load_error()}"
    assert "cuda" not in names


def test_automatic_choice_is_fastest_on_cpu():
    assert backends.select("cpu") == "cpp"


def test_triton_never_picked_automatically_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backends.select("cpu") != "triton"
    assert "triton" in backends.available("cpu")


def test_environment_overrides_default(monkeypatch):
    monkeypatch.setenv("FASTNERF_BACKEND", "torch")
    assert backends.select("cpu") == "torch"
    assert backends.select("cpu", "cpp") == "cpp"  # an explicit argument still wins


def test_unavailable_backend_names_the_available_ones():
    with pytest.raises(ValueError, match=r"backend='cuda' is not available .*available: \['cpp', 'torch'"):
        backends.select("cpu", "cuda")


def test_unavailable_environment_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("FASTNERF_BACKEND", "cuda")
    with pytest.raises(ValueError, match="FASTNERF_BACKEND='cuda'"):
        backends.select("cpu")


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.select("cpu", "metal")


def test_op_uses_the_selected_backend(monkeypatch):
    calls = []
    real = fastnerf.reference.composite.composite
    monkeypatch.setattr(fastnerf.reference.composite, "composite", lambda *a: calls.append(1) or real(*a))
    args = (torch.ones(2), torch.ones(2, 3), torch.zeros(2), torch.ones(2), torch.tensor([[0, 2]]))
    fastnerf.ops.composite(*args, backend="cpp")
    assert not calls
    fastnerf.ops.composite(*args, backend="torch")
    assert calls


def test_import_compiles_nothing_and_loads_no_native_code():
    # (torch itself may import triton when torch.library/dynamo load; our kernels must not load.)
    code = (
        "import sys, fastnerf; assert 'fastnerf._C' not in sys.modules; "
        "assert not any(m.startswith('fastnerf.kernels') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
