"""The one registry of model kinds.

A kind is a model class and what the rest of fastnerf needs to know about it, declared once,
where the class is defined, by ``register_model(name, ...)`` (or ``register_student``, which
adds the students' training settings)::

    @register_model("mykind", task="teacher", options=(Option("width", 64, "MLP width", flag=True),),
                    no_export="it marches a data-dependent number of samples per ray")
    class MyModel(nn.Module):
        def __init__(self, *, width: int, depth: int = 4): ...   # width's default: the option's

- ``options``: the model options a user may set, each with its name, type, default and help
  (``fastnerf.options.Option``). Their defaults become the constructor's; a model's ``config()``
  (what checkpoints save) holds their values; ``flag=True`` gives an option a flag on the
  ``fastnerf train`` command of the kind's task (``--width``), listed under the kind in ``--help``.
- ``task``: the ``fastnerf train`` task that trains the kind (a task module may name its kind
  only when it trains that one kind alone; the student task names none).
- ``no_export``: why ``fastnerf export`` refuses the kind. A kind without it exports when its
  class has ``export_forward`` (``fastnerf.export``).
- ``settings``: training settings with their defaults (the students': ``lr``, ``batch_views``, ...).

Nothing outside the kind's own module (and its task, as above) names a kind: the engine, the
student task, ``fastnerf.export``, ``fastnerf.render`` and the CLI read this registry
(``tests/test_registry.py`` greps them).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import UserError
from ..options import Options


@dataclass(frozen=True)
class Kind:
    """A registered model kind (see the module docstring)."""

    name: str
    model_class: type
    task: str | None = None
    options: Options = field(default_factory=Options)
    settings: dict = field(default_factory=dict)
    no_export: str | None = None

    @property
    def exports(self) -> bool:
        return self.no_export is None and hasattr(self.model_class, "export_forward")

    def why_not_export(self) -> str | None:
        """None for a kind that exports, else the reason."""
        if self.exports:
            return None
        return self.no_export or f"{self.model_class.__name__} has no export_forward"

    def check_config(self, config: dict, who: str) -> dict:
        """``config`` (a part of the model's) checked before anything is built: declared options by
        their declaration, other names against the constructor's parameters."""
        config = self.options.check(config, who)
        parameters = inspect.signature(self.model_class).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return config
        unknown = sorted(set(config) - set(parameters))
        if unknown:
            raise UserError(f"{who}: bad model option {', '.join(map(repr, unknown))} for kind {self.name!r}; "
                            f"its options: {', '.join(self.options.names) or 'none declared'}; "
                            f"its other parameters: {', '.join(n for n in parameters if n not in self.options)}")
        return config


KINDS: dict[str, Kind] = {}


def register_kind(name: str, *, task: str | None = None, options=(), settings: dict | None = None,
                  no_export: str | None = None):
    """Class decorator: register the model class as kind ``name`` (see the module docstring)."""
    declared = options if isinstance(options, Options) else Options(*options)

    def decorate(cls):
        declared.fill_defaults(cls, f"kind {name!r}")
        cls.kind = name
        KINDS[name] = Kind(name, cls, task=task, options=declared, settings=dict(settings or {}), no_export=no_export)
        return cls

    return decorate


def discover() -> dict[str, Kind]:
    """Import every module of ``fastnerf.models`` and its sub-packages, so each kind registers
    itself (a new kind is one new file, with no edit elsewhere). Returns ``KINDS``."""
    import importlib
    import pkgutil
    from pathlib import Path

    package = __name__.rpartition(".")[0]  # fastnerf.models, this module's package
    for module in pkgutil.walk_packages([str(Path(__file__).parent)], prefix=f"{package}."):
        importlib.import_module(module.name)
    return KINDS


def register_model(kind: str, *, task: str | None = None, options=(), no_export: str | None = None):
    """Class decorator: register this class as model kind ``kind`` (``build_model(kind, ...)`` builds it);
    ``task``, ``options`` and ``no_export`` are the kind's declaration."""
    return register_kind(kind, task=task, options=options, no_export=no_export)


def build_model(kind: str, **config):
    """A fresh model of registered ``kind`` (``"nerf"``, ...), built from plain-value ``config``."""
    return get_kind(kind).model_class(**config)


def kinds(*, task: str | None = None) -> list[Kind]:
    """Every registered kind (of ``task``, when given), by name."""
    discover()
    return [KINDS[name] for name in sorted(KINDS) if task is None or KINDS[name].task == task]


def get_kind(name: str, *, task: str | None = None, what: str = "model kind") -> Kind:
    """The kind called ``name`` (of ``task``, when given); a UserError listing the known ones otherwise."""
    if name not in KINDS:
        discover()
    kind = KINDS.get(name)
    if kind is None or (task is not None and kind.task != task):
        known = ", ".join(k.name for k in kinds(task=task))
        raise UserError(f"unknown {what} {name!r}; known kinds: {known}")
    return kind


class KindView(Mapping):
    """A live, read-only view of ``KINDS``: ``{name: value(kind)}`` for the kinds of ``task``."""

    def __init__(self, value=lambda kind: kind, *, task: str | None = None):
        self._value, self._task = value, task

    def _names(self) -> list[str]:
        return sorted(name for name, kind in KINDS.items() if self._task is None or kind.task == self._task)

    def __getitem__(self, name: str):
        kind = KINDS[name]
        if self._task is not None and kind.task != self._task:
            raise KeyError(name)
        return self._value(kind)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._names()})"
