"""The one registry of model kinds (fastnerf.models.registry) and declared options (fastnerf.options).

- No registered kind's name appears where the engine promises to know none: fastnerf/train/
  (a task module may name a kind only when it trains that kind alone), export.py, rendering.py
  and the train, eval, render and export commands. Every line counts, comments and docstrings
  included, case-insensitive, on word boundaries.
- What a kind declares reaches its constructor (the defaults), its saved config and the CLI;
  what a task declares reaches its constructor, its train_args (what checkpoints save) and its flags.
"""

import inspect
import re
from pathlib import Path

import pytest
import torch

import fastnerf
from fastnerf.cameras import orbit_path
from fastnerf.cli import build_parser
from fastnerf.data import Dataset
from fastnerf.errors import UserError
from fastnerf.models import build_model, get_kind, kinds
from fastnerf.models.students import STUDENT_KINDS, register_student
from fastnerf.options import REQUIRED, Option, Options, add_shared_flags
from fastnerf.train import save_checkpoint
from fastnerf.train.tasks import discover_tasks

ROOT = Path(fastnerf.__file__).parent
COMMANDS = ("train", "eval", "render", "export")
MULTI_SCENE_CLI = ("view", "_multi_scene")  # dispatch on the task's multi_scene, not on a kind


def kind_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)


def generic_files() -> list[Path]:
    """Files that must name no kind: the engine and everything else in train/ but the task
    modules, export.py, rendering.py and the CLI commands above."""
    train = [p for p in sorted((ROOT / "train").rglob("*.py")) if p.parent.name != "tasks" or p.name == "__init__.py"]
    return train + [ROOT / "export.py", ROOT / "rendering.py",
                    *(ROOT / "cli" / f"{c}.py" for c in COMMANDS + MULTI_SCENE_CLI)]


def task_modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted((ROOT / "train" / "tasks").glob("*.py")) if p.name != "__init__.py"}


def mentions(path: Path, names) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for name in names:
            if kind_pattern(name).search(line):
                found.append(f"{path.relative_to(ROOT.parent)}:{number}: {name!r} in {line.strip()!r}")
    return found


def test_the_files_checked_are_there_and_the_pattern_finds_names():
    files = generic_files()
    assert all(p.is_file() for p in files) and len(files) >= 10
    names = [kind.name for kind in kinds()]
    assert len(names) >= 6 and {"nerf", "pixelnerf"} <= set(names) and len(STUDENT_KINDS) >= 4
    for kind in kinds():  # each kind's own module names it: the pattern is not blind
        assert mentions(Path(inspect.getfile(kind.model_class)), [kind.name]), kind.name
    assert not kind_pattern("nerf").search("fastnerf.render(_shared, model)")  # other words are not names
    assert kind_pattern("nerf").search("# the NeRF teacher") and kind_pattern("shared").search('"shared"')


def test_no_kind_is_named_in_the_engine_export_rendering_or_the_commands():
    names = [kind.name for kind in kinds()]
    found = [hit for path in generic_files() for hit in mentions(path, names)]
    assert not found, "kind names where none may appear:\n" + "\n".join(found)


def test_a_task_module_names_no_kind_but_the_one_it_alone_trains():
    tasks = discover_tasks()
    modules = task_modules()
    assert {"teacher", "student", "pixelnerf"} <= set(modules) <= set(tasks) | {"__init__"}
    found = []
    for task, path in modules.items():
        own = [kind.name for kind in kinds(task=task)]
        allowed = set(own) if len(own) == 1 else set()
        found += mentions(path, [kind.name for kind in kinds() if kind.name not in allowed])
    assert not found, "kind names a task module may not use:\n" + "\n".join(found)


# ------------------------------------------------------------------------------ declarations
def probe(option: Option):
    """A value of ``option`` other than its default, or None where none can be made up."""
    if option.choices:
        return next(c for c in option.choices if c != option.default)
    if option.type is bool:
        return not option.default
    if option.type is int:
        return 2 * option.default if option.default else 2
    if option.type is float:
        return option.default / 2 if option.default else 0.5
    return None


def declared_kinds():
    return [kind for kind in kinds() if len(kind.options)]


@pytest.mark.parametrize("kind", [k.name for k in kinds()])
def test_a_kinds_declared_defaults_are_its_constructors(kind):
    kind = get_kind(kind)
    parameters = inspect.signature(kind.model_class).parameters
    for option in kind.options:
        assert parameters[option.name].default == option.default, (kind.name, option.name)


@pytest.fixture(scope="module")
def teacher_and_data():
    teacher = build_model("nerf", hash_levels=2, hash_log2_size=8, hash_max_res=32, hidden=8, grid_resolution=4)
    cameras = orbit_path(3, 4.0, 25.0, 16, 12, 0.9)
    dataset = Dataset(torch.rand(3, 12, 16, 3), cameras)
    from fastnerf.distill import sampler_for

    return teacher, dataset, sampler_for(dataset)


def config_for(kind, teacher_and_data, **overrides) -> dict:
    if hasattr(kind.model_class, "config_for"):
        return kind.model_class.config_for(*teacher_and_data, **overrides)
    return overrides


@pytest.mark.parametrize("kind", [k.name for k in declared_kinds()])
def test_a_kinds_declared_options_reach_its_saved_config(kind, teacher_and_data, tmp_path):
    kind = get_kind(kind)
    model = build_model(kind.name, **config_for(kind, teacher_and_data))
    for option in kind.options:
        assert model.config()[option.name] == option.default, (kind.name, option.name)
    slow = {"encoder"}  # a ResNet-34
    probes = {o.name: probe(o) for o in kind.options if probe(o) is not None and o.name not in slow}
    torch.manual_seed(0)
    model = build_model(kind.name, **config_for(kind, teacher_and_data, **probes))
    saved = save_checkpoint(tmp_path / "run", model=model)
    config = torch.load(saved, weights_only=True)["model_config"]
    assert {name: config[name] for name in probes} == probes


def test_the_student_command_lists_and_takes_every_kinds_flags(tmp_path, teacher_and_data):
    teacher = fake_teacher_run(tmp_path, teacher_and_data[0])
    parser = build_parser()
    student = parser.parse_args(["train", "student", "--out", "x"]).task_class
    help_text = subcommand_help(parser, "student")
    for kind in STUDENT_KINDS.values():
        assert f"  {kind.name}: " in help_text, kind.name  # each kind's options are listed under its name
        for option in kind.options:
            assert (option.flag_name if option.flag else f"{option.name}={option.default}") in help_text
            value = probe(option)
            if value is None:
                continue
            given = ([option.flag_name] if option.type is bool else [option.flag_name, str(value)]) if option.flag \
                else ["--option", f"{option.name}={value}"]
            args = parser.parse_args(["train", "student", "--teacher", str(teacher), "--kind", kind.name,
                                      "--out", "x", *given])
            task = student.from_args(args)
            assert task.train_args()["model"][option.name] == value, (kind.name, option.name)


def test_a_tasks_declared_options_reach_its_constructor_train_args_and_flags(tmp_path, teacher_and_data):
    teacher = fake_teacher_run(tmp_path, teacher_and_data[0])
    (tmp_path / "pool.pt").write_bytes(b"")
    required = {"data": str(tmp_path), "teacher": str(teacher), "kind": "pose", "pool_file": str(tmp_path / "pool.pt")}
    parser = build_parser()
    tasks = discover_tasks()
    for name, task_class in tasks.items():
        options = task_class.options
        base = [a for o in options if o.required for a in (o.flag_name, required[o.name])]
        defaults = task_class.from_args(parser.parse_args(["train", name, "--out", "x", *base])).train_args()
        assert set(defaults) == set(options.names)
        for option in options:
            if not option.required:
                assert defaults[option.name] == option.default, (name, option.name)
            if not option.flag or option.required:
                continue
            value = probe(option) if option.name not in required else required[option.name]
            if value is None:
                continue
            given = [option.flag_name] if option.type is bool else [option.flag_name, str(value)]
            task = task_class.from_args(parser.parse_args(["train", name, "--out", "x", *base, *given]))
            expected = str(Path(value).resolve()) if option.type is Path else value
            assert task.train_args()[option.name] == expected, (name, option.name)
            rebuilt = task_class.from_train_args(task.train_args())  # what a resumed run is rebuilt from
            assert rebuilt.train_args() == task.train_args()
    with pytest.raises(UserError, match="teacher: --downscale must be an integer >= 1, got 0"):
        tasks["teacher"](data=str(tmp_path), downscale=0)
    with pytest.raises(UserError, match="teacher: no option 'wings'; its options: data, "):
        tasks["teacher"](data=str(tmp_path), wings=2)


def test_a_declared_model_option_is_checked_before_anything_is_built():
    hybrid = get_kind("hybrid")
    with pytest.raises(UserError, match="--factor must be an integer, got 'two'"):
        hybrid.check_config({"factor": "two"}, "student 'hybrid'")
    with pytest.raises(UserError, match="--sampling must be one of march, dense"):
        hybrid.check_config({"sampling": "sparse"}, "student 'hybrid'")
    with pytest.raises(UserError, match="bad model option 'wings' for kind 'hybrid'; its options: factor"):
        hybrid.check_config({"wings": 2}, "student 'hybrid'")
    undeclared = {"hidden": 32, "factor": 2}  # hidden: not declared, but a parameter of the constructor
    assert hybrid.check_config(undeclared, "x") == undeclared


def test_the_export_declaration_is_the_kinds_own():
    exporting = {kind.name for kind in kinds() if kind.exports}
    assert {"pose", "shared", "lightfield"} <= exporting and not {"nerf", "hybrid", "pixelnerf"} & exporting
    for kind in kinds():
        assert (kind.why_not_export() is None) == kind.exports


def test_the_commands_take_a_run_scene_by_scene_when_its_task_declares_multi_scene(tmp_path, monkeypatch,
                                                                                   teacher_and_data):
    from fastnerf.cli._multi_scene import is_multi_scene_run

    tasks = discover_tasks()
    assert [name for name, task in tasks.items() if task.multi_scene] == ["pixelnerf"]
    model = teacher_and_data[0]  # any model: the run's task decides, not its kind
    for name in [*tasks, "gone"]:  # "gone": a task this fastnerf lacks
        save_checkpoint(tmp_path / name, model=model, task=name)
    assert {name: is_multi_scene_run(tmp_path / name) for name in [*tasks, "gone"]} == {
        name: name == "pixelnerf" for name in [*tasks, "gone"]}
    monkeypatch.setattr(tasks["teacher"], "multi_scene", True)  # the declaration decides, not the kind or data
    assert is_multi_scene_run(tmp_path / "teacher")


def test_register_student_keeps_working_with_settings_only_and_declares_options_once():
    from fastnerf.models import KINDS

    class Plain(torch.nn.Module):
        def __init__(self, *, width: int = 3):
            super().__init__()
            self.width = width

    class Declared(torch.nn.Module):
        def __init__(self, *, width: int, depth: int = 2):
            super().__init__()
            self.width = width

    try:
        register_student("test-plain", lr=1e-2, rays=7)(Plain)  # as a kind without options registers
        kind = STUDENT_KINDS["test-plain"]
        assert kind.model_class is Plain and kind.settings["rays"] == 7 and kind.settings["batch_views"] == 4
        assert kind.task == "student" and not len(kind.options) and not kind.exports
        assert "has no export_forward" in kind.why_not_export()
        register_student("test-declared", options=(Option("width", 5, "width", flag=True),))(Declared)
        assert build_model("test-declared").width == 5
        with pytest.raises(TypeError, match="declare it once"):
            register_student("test-twice", options=(Option("width", 5, "width"),))(Plain)
        with pytest.raises(TypeError, match="not a keyword-only parameter"):
            register_student("test-missing", options=(Option("height", 5, "height"),))(Plain)
    finally:
        for name in ("test-plain", "test-declared", "test-twice", "test-missing"):
            KINDS.pop(name, None)


def test_options_check_types_bounds_and_required_values():
    options = Options(Option("path", REQUIRED, "a path", type=Path, flag=True), Option("ratio", 0.5, "r", maximum=1),
                      Option("on", True, "do it", flag=True))
    assert options.resolve({"path": "a", "ratio": 1}, "who") == {"path": str(Path("a").resolve()), "ratio": 1.0,
                                                                  "on": True}
    assert options["on"].flag_name == "--no-on"
    with pytest.raises(UserError, match="who: --path required"):
        options.resolve({}, "who")
    with pytest.raises(UserError, match=r"who: ratio must be a number <= 1, got 2"):
        options.resolve({"path": "a", "ratio": 2}, "who")
    with pytest.raises(UserError, match="who: ratio must be a number, got True"):
        options.resolve({"path": "a", "ratio": True}, "who")


def test_a_negated_flags_help_says_what_the_flag_does_after_its_owners_names():
    # The bug: "do not " was put before the text the owners' names lead, so the student command
    # showed "--no-train-geometry  do not hybrid: train the density field ...".
    import argparse

    owners = {"a": Options(Option("shuffle", True, "shuffle the views", flag=True),
                           Option("width", 3, "width", flag=True)),
              "b": Options(Option("shuffle", True, "shuffle the views", flag=True),
                           Option("keep", True, "keep the grid", flag=True, negated_help="throw the grid away"))}
    parser = argparse.ArgumentParser()
    add_shared_flags(parser, owners, title="options", dest_prefix="m_")
    helps = {action.option_strings[0]: action.help for action in parser._actions}
    assert helps["--no-shuffle"] == "a, b: do not shuffle the views"
    assert helps["--no-keep"] == "b: throw the grid away"
    assert helps["--width"] == "a: width (default 3)"
    alone = argparse.ArgumentParser()
    Options(*owners["a"]).add_arguments(alone)
    assert {a.option_strings[0]: a.help for a in alone._actions}["--no-shuffle"] == "do not shuffle the views"

    text = " ".join(subcommand_help(build_parser(), "student").split())
    assert "--no-train-geometry hybrid: keep the density field copied from the teacher frozen" in text
    for kind in STUDENT_KINDS.values():
        assert f"do not {kind.name}" not in text
        for option in kind.options:
            if option.flag and option.negated:
                assert option.flag_help() in text, (kind.name, option.name)


# ------------------------------------------------------------------------------ helpers
def fake_teacher_run(root: Path, teacher) -> Path:
    """A teacher run folder (checkpoint only, no training) whose dataset folder exists."""
    (root / "data").mkdir(exist_ok=True)
    save_checkpoint(root / "teacher", model=teacher, task="teacher", dataset={"path": str(root / "data")})
    return root / "teacher"


def subcommand_help(parser, task: str) -> str:
    import argparse

    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    tasks = next(a for a in train._actions if isinstance(a, argparse._SubParsersAction))
    return tasks.choices[task].format_help()
