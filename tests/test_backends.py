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


def test_op_property_tests_follow_the_hypothesis_profile():
    """A max_examples written on a test silently overrides HYPOTHESIS_PROFILE=thorough (300):
    the op tests take their example count from the profile alone (tests/conftest.py)."""
    import importlib
    import inspect

    from hypothesis import settings

    profile = settings.default.max_examples  # the profile conftest.py loaded
    for name in ("test_composite", "test_freq_encode", "test_hash_encode", "test_march_rays", "test_ray_aabb"):
        module = importlib.import_module(name)
        # In the default profile a cap equal to it would pass the check below: read the source too.
        assert "max_examples" not in inspect.getsource(module), f"{name} sets max_examples itself"
        for attribute, test in vars(module).items():
            if hasattr(test, "hypothesis"):
                chosen = getattr(test, "_hypothesis_internal_use_settings", settings.default).max_examples
                assert chosen == profile, f"{name}.{attribute} runs {chosen} examples, the profile says {profile}"


# ---- why a backend is unavailable: shared by the errors and `fastnerf info` -------------------


def test_unavailable_reasons_on_this_machine(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert backends.unavailable_reason("torch", "cpu") is None
    assert "runs on CUDA devices only" in backends.unavailable_reason("cuda", "cpu")
    assert "TRITON_INTERPRET=1" in backends.unavailable_reason("triton", "cpu")
    monkeypatch.setattr(backends, "_triton_importable", lambda: False)
    assert "pip install triton" in backends.unavailable_reason("triton", "cpu")
    if not torch.cuda.is_available():
        for name in backends.NAMES:
            assert backends.unavailable_reason(name, "cuda").startswith("no CUDA device")
        assert backends.available("cuda") == []


def test_cuda_backend_without_cuda_in_the_build_says_so(monkeypatch):
    if fastnerf._native.load_error() or fastnerf._native.built_with_cuda():
        pytest.skip("needs a CPU-only build of fastnerf._C")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU, but a CPU-only build
    assert "built without CUDA" in backends.unavailable_reason("cuda", "cuda")
    with pytest.raises(ValueError, match=r"backend='cuda' is not available .*built without CUDA"):
        backends.select("cuda", "cuda")


def test_explicit_cpp_request_names_the_load_error(monkeypatch):
    monkeypatch.setattr(fastnerf._native, "load_error", lambda: "fastnerf._C could not be loaded (ImportError: boom)")
    with pytest.raises(ValueError, match=r"backend='cpp' is not available .*ImportError: boom"):
        backends.select("cpu", "cpp")


def test_fallback_when_native_library_fails_to_load_warns_once(monkeypatch):
    import warnings

    error = "fastnerf._C could not be loaded (ImportError: undefined symbol: foo); build it with ..."
    monkeypatch.setattr(fastnerf._native, "load_error", lambda: error)
    monkeypatch.setattr(backends, "_fallback_warned", False)
    monkeypatch.delenv("FASTNERF_BACKEND", raising=False)
    with pytest.warns(RuntimeWarning, match=r"run on the 'torch' backend.*undefined symbol: foo.*build it"):
        assert backends.select("cpu") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert backends.select("cpu") == "torch"
        args = (torch.ones(2), torch.ones(2, 3), torch.zeros(2), torch.ones(2), torch.tensor([[0, 2]]))
        fastnerf.ops.composite(*args)


def test_no_warning_when_native_library_loads(monkeypatch):
    import warnings

    if fastnerf._native.load_error():
        pytest.skip(fastnerf._native.load_error())
    monkeypatch.setattr(backends, "_fallback_warned", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backends.select("cpu")


# ---- Triton launchers run on their tensors' device ----------------------------------------------


class DeviceGuardRecorder:
    """Stands in for torch.cuda.device: records the index entered and whether a launch is inside."""

    def __init__(self):
        self.entered, self.depth = [], 0

    def __call__(self, index):
        self.entered.append(index)
        return self

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1


def test_triton_launchers_enter_the_tensors_device(monkeypatch):
    import importlib

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if "triton" not in backends.available(device):
        pytest.skip(backends.unavailable_reason("triton", device))
    recorder = DeviceGuardRecorder()
    launched = []

    class CheckedKernel:  # kernel[grid](...) must run inside the recorder's `with`
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                assert recorder.depth > 0, f"{self.name} launched outside `with torch.cuda.device(...)`"
                launched.append(self.name)
                return self.kernel[grid](*args, **kwargs)

            return launch

    for op in ("composite", "freq_encode", "hash_encode", "march_rays", "ray_aabb"):
        module = importlib.import_module(f"fastnerf.kernels.{op}")
        for name, kernel in list(vars(module).items()):
            if name.endswith("_kernel"):
                monkeypatch.setattr(module, name, CheckedKernel(f"{op}.{name}", kernel))
    monkeypatch.setattr(torch.cuda, "device", recorder)

    from fastnerf.ops import composite, freq_encode, hash_encode, march_rays, ray_aabb

    t = torch.linspace(0, 1, 4, device=device)
    sigmas = torch.ones(3, device=device, requires_grad=True)
    out = composite(sigmas, torch.ones(3, 3, device=device), t[:-1], t[1:],
                    torch.tensor([[0, 3]], device=device), backend="triton")
    out[0].sum().backward()
    x = torch.rand(2, 3, device=device, requires_grad=True)
    freq_encode(x, 2, backend="triton").sum().backward()
    hash_encode(x, torch.rand(2, 16, 2, device=device, requires_grad=True), n_min=2, n_max=4,
                backend="triton").sum().backward()
    rays_o = torch.tensor([[-2.0, 0.1, 0.2]], device=device)
    rays_d = torch.tensor([[1.0, 0.0, 0.0]], device=device)
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], device=device)
    t_near, t_far, _ = ray_aabb(rays_o, rays_d, aabb, backend="triton")
    march_rays(rays_o, rays_d, t_near, t_far, (aabb, torch.ones(2, 2, 2, dtype=torch.bool, device=device)), 0.5,
               backend="triton")
    expected_index = (torch.device(device).index or 0) if device == "cuda" else -1
    assert set(recorder.entered) == {expected_index}
    assert {name.split(".")[0] for name in launched} == {"composite", "freq_encode", "hash_encode", "march_rays",
                                                         "ray_aabb"}
    assert len(set(launched)) == 7  # every kernel: forward and backward ones included
