"""Declared options: one declaration gives a constructor its defaults, a checkpoint its saved
values and ``fastnerf`` its command-line flags.

A training task (``Task.options``) and a model kind (``register_model(..., options=...)``) each
declare their options once::

    Option("pool_size", 128, "teacher views kept in memory", flag=True, minimum=1)

- ``Options.resolve(values, who)`` checks the given values (unknown names, types, choices,
  bounds: a ``UserError`` naming the option and what it expects) and fills in the defaults: a
  task keeps the result as its ``train_args``, which checkpoints save;
- ``Options.add_arguments(parser)`` adds a flag (``--pool-size``) for every option declared with
  ``flag``, its help ending with the default; ``Options.given(namespace)`` collects what was given;
- ``Options.fill_defaults(cls)`` gives a model class's keyword-only constructor parameters their
  defaults from the declaration (the signature names and types them, the declaration holds the
  default: written once, so the two cannot drift).
"""

from __future__ import annotations

import argparse
import inspect
import os
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # the default of an option that has none: it must be given
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a mapping", Path: "a path"}


@dataclass(frozen=True)
class Option:
    """One option: ``name``, ``default`` (``REQUIRED``: none) and ``help``.

    Args:
        type: ``int``, ``float``, ``str``, ``bool``, ``list``, ``dict`` or ``Path`` (a path, kept as
            its absolute form); default: the type of ``default``.
        flag: ``True`` for a flag ``--name-with-dashes`` (for a bool that defaults to true,
            ``--no-name``), or the flag itself; False: none.
        negated_help: the help of a ``--no-name`` flag (default: "do not " + ``help``); ``help``
            says what the option does when true, this what the flag does.
        choices, minimum, maximum: what a value may be (checked for every value, not only flags).
        metavar: the flag's placeholder; parse: the flag's text -> value (default: ``type``).
    """

    name: str
    default: Any
    help: str
    type: Any = None
    flag: bool | str = False
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    negated_help: str | None = None

    def __post_init__(self):
        if self.type is None:
            if self.default is None or self.default is REQUIRED:
                raise TypeError(f"option {self.name!r}: give type= (its default says none)")
            object.__setattr__(self, "type", type(self.default))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    # ----------------------------------------------------------------------------- values
    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def flag_name(self) -> str | None:
        if not self.flag:
            return None
        if isinstance(self.flag, str):
            return self.flag
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.negated else f"--{dashed}"

    def label(self) -> str:
        """How messages name the option: its flag where it has one."""
        return self.flag_name or self.name

    def check(self, value, who: str):
        """``value`` in the option's normal form, or a UserError saying what was expected. None
        stands for the default (a Python caller's way of not giving a value)."""
        if value is None and not self.required:
            return _copy(self.default)
        value = self._typed(value, who)
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{who}: {self.label()} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"in [{low:g}, {high:g}]" if low is not None and high is not None
                      else f">= {low:g}" if low is not None else f"<= {high:g}")
            raise UserError(f"{who}: {self.label()} must be {_TYPE_NAMES.get(self.type, 'a value')} {bounds}, "
                            f"got {value!r}")
        return value

    def _typed(self, value, who: str):
        kind = self.type
        ok = {int: isinstance(value, int) and not isinstance(value, bool),
              float: isinstance(value, (int, float)) and not isinstance(value, bool),
              bool: isinstance(value, bool), str: isinstance(value, str),
              list: isinstance(value, (list, tuple)), dict: isinstance(value, dict),
              Path: isinstance(value, (str, os.PathLike))}.get(kind)
        if ok is None:
            ok = isinstance(value, kind)
        if not ok:
            expected = _TYPE_NAMES.get(kind, getattr(kind, "__name__", str(kind)))
            raise UserError(f"{who}: {self.label()} must be {expected}, got {value!r}")
        if kind is float:
            return float(value)
        if kind is list:
            return list(value)
        if kind is dict:
            return dict(value)
        if kind is Path:
            return str(Path(value).resolve())
        return value

    # ----------------------------------------------------------------------------- command line
    @property
    def negated(self) -> bool:
        """Whether the flag is ``--no-name``: a bool that defaults to true."""
        return self.type is bool and self.default is True

    def flag_help(self, *, show_default: bool = True) -> str:
        """What the flag does: ``help``, or for ``--no-name`` ``negated_help`` ("do not " + ``help``
        when not declared), ending with the default (``show_default``) where the option has one
        and the help does not already say it."""
        if self.negated:
            return self.negated_help or f"do not {self.help}"
        return self.help + (self.default_note(self.help) if show_default else "")

    def default_note(self, text: str) -> str:
        """`` (default X)`` to end ``text`` with, or "" (no default, a bool, or ``text`` says it)."""
        if self.type is bool or self.required or self.default is None or "default" in text:
            return ""
        return f" (default {self.default})"

    def add_argument(self, parser, *, dest: str | None = None, help: str | None = None) -> None:
        """Add this option's flag to ``parser`` (an ``argparse`` parser or group). Its default is
        None: an option not given keeps the declared default (shown in the help). ``help``: the
        flag's whole help text (default: ``flag_help()``)."""
        dest = dest or self.name
        text = self.flag_help() if help is None else help
        if self.type is bool:
            parser.add_argument(self.flag_name, dest=dest, action="store_const", const=not self.negated, default=None,
                                help=text)
            return
        converter = self.parse or (self.type if self.type in (int, float, str) else str)
        metavar = self.metavar or (None if self.choices else self.name.upper())
        parser.add_argument(self.flag_name, dest=dest, type=converter, choices=self.choices, default=None,
                            required=self.required, metavar=metavar, help=text)


class Options:
    """An ordered set of ``Option``s (see the module docstring)."""

    def __init__(self, *options: Option):
        self._options = {}
        for option in options:
            if option.name in self._options:
                raise TypeError(f"option {option.name!r} declared twice")
            self._options[option.name] = option

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def __len__(self) -> int:
        return len(self._options)

    def __contains__(self, name) -> bool:
        return name in self._options

    def __getitem__(self, name: str) -> Option:
        return self._options[name]

    def __repr__(self) -> str:
        return f"Options({', '.join(self._options)})"

    @property
    def names(self) -> list[str]:
        return list(self._options)

    def defaults(self) -> dict:
        return {o.name: o.default for o in self if not o.required}

    def resolve(self, values: dict, who: str) -> dict:
        """Every option's value, in declaration order: ``values`` checked, defaults for the rest."""
        self._refuse_unknown(values, who)
        missing = [o.label() for o in self if o.required and values.get(o.name) is None]
        if missing:
            raise UserError(f"{who}: {', '.join(missing)} required")
        return {o.name: o.check(values[o.name], who) if o.name in values else _copy(o.default) for o in self}

    def check(self, values: dict, who: str) -> dict:
        """``values`` (a subset) checked; declared options in normal form, other names left as they are."""
        return {name: self[name].check(value, who) if name in self else value for name, value in values.items()}

    def _refuse_unknown(self, values: dict, who: str) -> None:
        unknown = sorted(set(values) - set(self._options))
        if unknown:
            raise UserError(f"{who}: no option {', '.join(map(repr, unknown))}; "
                            f"its options: {', '.join(self.names) or 'none'}")

    # ----------------------------------------------------------------------------- command line
    def add_arguments(self, parser) -> None:
        for option in self:
            if option.flag:
                option.add_argument(parser)

    def given(self, namespace: argparse.Namespace) -> dict:
        """``{name: value}`` of the flags given on a command line parsed with ``add_arguments``."""
        return {o.name: getattr(namespace, o.name) for o in self
                if o.flag and getattr(namespace, o.name, None) is not None}

    # ----------------------------------------------------------------------------- constructors
    def fill_defaults(self, cls: type, who: str) -> None:
        """Give ``cls.__init__``'s keyword-only parameters named by options their declared defaults.

        Each option must be a keyword-only parameter of the class's own ``__init__`` and have no
        default there: the declaration is the one place a default is written.
        """
        if not len(self):
            return
        init = cls.__dict__.get("__init__")
        if init is None:
            raise TypeError(f"{who}: declares options, so {cls.__name__} must define its own __init__")
        parameters = inspect.signature(init).parameters
        for option in self:
            parameter = parameters.get(option.name)
            if parameter is None or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TypeError(f"{who}: option {option.name!r} is not a keyword-only parameter of "
                                f"{cls.__name__}.__init__")
            if parameter.default is not inspect.Parameter.empty:
                raise TypeError(f"{who}: option {option.name!r} has a default in {cls.__name__}.__init__ as well; "
                                "declare it once, in the option")
        init.__kwdefaults__ = {**(init.__kwdefaults__ or {}),
                               **{o.name: o.default for o in self if not o.required}}


def add_shared_flags(parser, owners: dict, *, title: str, dest_prefix: str, others: str | None = None) -> None:
    """Add the flags of several owners' ``Options`` (``{owner name: Options}``, e.g. the student
    kinds) as one argument group: a flag that several owners declare is added once (they must
    declare it alike), its help says whose it is, and the group lists each owner's options
    (``others``: how the unflagged ones are given, e.g. ``"--option"``; None: not listed)."""
    flags: dict[str, list] = {}
    lines = []
    for owner, options in owners.items():
        parts = [", ".join(o.flag_name + ("" if o.type is bool or o.default is None else f" {o.default}")
                           for o in options if o.flag)]
        if others:
            rest = ", ".join(f"{o.name}={o.default}" for o in options if not o.flag)
            parts.append(f"{others} {rest}" if rest else "")
        text = "; ".join(part for part in parts if part) or (
            f"none declared ({others} NAME=VALUE sets any constructor parameter)" if others else "none")
        lines.append(textwrap.fill(f"{owner}: {text}", width=78, initial_indent="  ", subsequent_indent="      "))
        for option in options:
            if option.flag:
                flags.setdefault(option.flag_name, []).append((owner, option))
    if not flags and not others:
        return
    group = parser.add_argument_group(title, "\n".join(lines))
    for flag, declared in flags.items():
        first = declared[0][1]
        for owner, option in declared[1:]:
            if (option.type, option.choices, option.parse) != (first.type, first.choices, first.parse):
                raise TypeError(f"{declared[0][0]!r} and {owner!r} declare {flag} differently")
        # the owners' names lead the flag's own help (negated first: "hybrid: keep ...", never
        # "do not hybrid: ..."); the default ends it once
        helps = {owner: option.flag_help(show_default=False) for owner, option in declared}
        text = (f"{', '.join(helps)}: {next(iter(helps.values()))}" if len(set(helps.values())) == 1 else
                "; ".join(f"{owner}: {said}" for owner, said in helps.items()))
        if len({repr(option.default) for _, option in declared}) > 1:
            text = f"{text} (default: each one's own, listed above)"
        else:
            text += first.default_note(text)
        replace(first, flag=flag).add_argument(group, dest=f"{dest_prefix}{first.name}", help=text)


def shared_flags_given(namespace: argparse.Namespace, owners: dict, *, dest_prefix: str) -> dict:
    """``{option name: value}`` of the flags ``add_shared_flags`` added that were given."""
    names = {o.name for options in owners.values() for o in options if o.flag}
    return {name: getattr(namespace, f"{dest_prefix}{name}") for name in sorted(names)
            if getattr(namespace, f"{dest_prefix}{name}", None) is not None}


MAX_PIXELS = 64_000_000  # a --size above this is a typo, not a wish (8000x8000)


def parse_size(text, *, flag: str = "--size") -> tuple[int, int] | None:
    """``"200x150"`` -> ``(200, 150)`` (None stays None), or a UserError naming ``flag``."""
    if text is None:
        return None
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UserError(f"{flag} must look like 200x150, got {text!r}") from None
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise UserError(f"{flag} {text}: width and height must be positive, at most {MAX_PIXELS:,} pixels in all")
    return width, height


def _copy(value):
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value
