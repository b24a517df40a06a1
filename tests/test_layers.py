"""The import contract: layers point one way and no module imports itself back through others.

Every ``import`` in the package (inside functions too: a lazy import is still a dependency) is read
with ``ast`` and checked against the layer order of docs/architecture.md: a module may import its
own layer and the layers below it, never one above; and the module graph has no cycle. No
exceptions are listed: a new upward import is a design question, answered by moving code down.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"fastnerf": ROOT / "fastnerf", "fastnerf.kernels": ROOT / "kernels"}

# Top to bottom. A module belongs to the first layer with a prefix of its name (a prefix is a
# module or a package); the bare package ``fastnerf`` is the public API, just below the commands.
LAYERS = [
    ("commands", ["fastnerf.__main__", "fastnerf.cli"]),
    ("viewer", ["fastnerf.viewer"]),
    ("public API", ["fastnerf"]),
    ("training", ["fastnerf.train"]),
    ("distillation and export", ["fastnerf.distill", "fastnerf.export"]),
    ("rendering", ["fastnerf.rendering", "fastnerf.timing"]),
    ("runs", ["fastnerf.runs"]),
    ("models", ["fastnerf.models"]),
    ("fields and volume rendering", ["fastnerf.fields", "fastnerf.volume"]),
    ("capture", ["fastnerf.capture"]),
    ("data and cameras", ["fastnerf.data", "fastnerf.cameras", "fastnerf.distortion", "fastnerf.camera_path",
                          "fastnerf.frames", "fastnerf.metrics", "fastnerf.supersampling"]),
    ("ops", ["fastnerf.ops"]),
    ("reference and kernels", ["fastnerf.reference", "fastnerf.kernels", "fastnerf._C"]),
    ("backends", ["fastnerf.backends", "fastnerf._native", "fastnerf._build"]),
    ("foundations", ["fastnerf.errors", "fastnerf.options", "fastnerf.devices"]),
]


def module_files() -> dict:
    """``{module name: path}`` for every Python file of the package (kernels/ as fastnerf.kernels)."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def imports_of(name: str, path: Path, modules: dict) -> set:
    """The package modules ``name`` imports (``from pkg import x``: ``pkg.x`` when x is a module)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules and "." in target:  # `import a.b.c` names a module
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.add(target)
    return found


def layer_of(name: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "fastnerf" and name != "fastnerf":
                continue  # the bare package is the public API alone, not everything under it
            if name == prefix or name.startswith(prefix + "."):
                return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def graph() -> dict:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in graph():
        layer_of(name)


def test_imports_point_down_only():
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for name, targets in sorted(graph().items()) for target in sorted(targets)
              if layer_of(target) < layer_of(name)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges, cycles, state = graph(), [], {}

    def visit(name, stack):  # depth-first; a grey node met again closes a cycle
        state[name] = "grey"
        stack.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == "grey":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[name] = "black"

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_contract_sees_what_it_checks(tmp_path):
    """The checker itself: a relative, a lazy and a dotted import are all found."""
    modules = {"fastnerf.a": None, "fastnerf.b": None, "fastnerf.b.c": None, "fastnerf.d": None}
    source = tmp_path / "a.py"
    source.write_text("from .b import c\ndef f():\n    import fastnerf.d.x\n")
    assert imports_of("fastnerf.a", source, modules) == {"fastnerf.b.c", "fastnerf.d"}
    assert layer_of("fastnerf.cli.train") < layer_of("fastnerf") < layer_of("fastnerf.train.engine")
    assert layer_of("fastnerf.viewer.server") < layer_of("fastnerf.rendering") < layer_of("fastnerf.ops.composite")
