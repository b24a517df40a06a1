"""`fastnerf info`: versions, devices, every backend with "available" or why not, build flags."""

import json

import torch

import fastnerf
from fastnerf import backends
from fastnerf.cli import main


def test_info_text_names_versions_devices_backends_and_build(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"torch      {torch.__version__}" in text
    assert f"fastnerf   {fastnerf.__version__}" in text
    assert "threads" in text and "platform" in text
    lines = text.splitlines()
    cpu_at = lines.index(next(line for line in lines if line.startswith("  cpu ")))
    cpu_rows = dict(line.split(None, 1) for line in lines[cpu_at + 1:cpu_at + 5])
    for name in backends.NAMES:  # each backend on the CPU: "available" or the very reason the registry gives
        assert cpu_rows[name] == (backends.unavailable_reason(name, "cpu") or "available")
    if not torch.cuda.is_available():
        assert "device     no CUDA device" in text
    if fastnerf._native.available():
        assert "fastnerf._C  loaded" in text and "-ffp-contract=off" in text


def test_info_json_is_machine_readable():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", "--json"]) == 0
    info = json.loads(out.getvalue())
    assert info["torch"] == torch.__version__ and info["torch_cuda"] == torch.version.cuda
    assert set(info["backends"]) == {"cpu", "cuda"}
    assert info["backends"]["cpu"]["torch"] == "available"
    assert info["cpu_threads"]["torch"] == torch.get_num_threads()
    assert info["build_flags"]["cxx"][:2] == ["-O3", "-ffp-contract=off"]
    if fastnerf._native.available():
        built = info["native"]["build_info"]
        assert built["torch"] == torch.__version__ and "-ffp-contract=off" in built["cxx_flags"] and built["compiler"]
    if not torch.cuda.is_available():
        assert info["cuda_devices"] == [] and info["no_cuda_reason"].startswith("no CUDA device")
        assert all(reason.startswith("no CUDA device") for reason in info["backends"]["cuda"].values())


def test_info_shows_the_load_error_of_the_native_library(monkeypatch, capsys):
    error = "fastnerf._C could not be loaded (ImportError: libc10.so: cannot open shared object file)"
    monkeypatch.setattr(fastnerf._native, "load_error", lambda: error)
    monkeypatch.setattr(backends, "_fallback_warned", True)  # the warning is tested in test_backends
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"fastnerf._C  not loaded: {error}" in text
    assert f"    cpp     {error}" in text
