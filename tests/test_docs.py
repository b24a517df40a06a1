"""The examples in the docstrings of fastnerf.ops and fastnerf.render run and print what they say,
and docs/architecture.md names every layer of the import contract (tests/test_layers.py)."""

import doctest
import importlib
from pathlib import Path

import pytest

import fastnerf.ops
from test_layers import LAYERS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLED = [f"fastnerf.ops.{name}" for name in ("baked_render", "composite", "freq_encode", "hash_encode",
                                                 "march_rays", "project_features", "ray_aabb", "sh_encode")] + ["fastnerf.rendering"]


@pytest.mark.parametrize("module_name", EXAMPLED)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.attempted > 0, f"{module_name} has no example"
    assert result.failed == 0


def test_every_public_op_has_an_example():
    for name in fastnerf.ops.__all__:
        function = getattr(fastnerf.ops, name)
        if callable(function) and not isinstance(function, type):
            assert ">>>" in (function.__doc__ or ""), f"fastnerf.ops.{name} has no example in its docstring"


def test_the_architecture_document_names_every_layer():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            path = prefix.replace("fastnerf.kernels", "kernels").replace(".", "/")
            if prefix == "fastnerf":
                continue
            last = prefix.rpartition(".")[2]
            if (ROOT / path).is_dir():
                shown = f"`{last}/`"
            elif (ROOT / f"{path}.py").is_file():
                shown = f"`{last}`" if last == "__main__" else f"`{last}.py`"
            else:
                continue  # a layer still to come (viewer/, capture/)
            assert shown in text, f"docs/architecture.md does not name {shown} (layer {layer!r})"
