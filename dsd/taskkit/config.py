"""Configuration dataclasses whose fields carry their own help, and the flags made from them.

A field is declared once, with its default, its help text and (where the values are few) its
choices, next to each other::

    arch: str = param("resnet18", "the torchvision architecture", choices=ARCHS)
    weight_decay: float = param(-1.0, "-1: the architecture's original (1e-4 on ResNet)")

The command line (``add_config_flags``) turns every field into a typed flag whose ``--help``
shows that text, the default and the choices; the run's hash (``non_default_fields``) keeps only
the fields that differ from their defaults and never a field marked ``path=True`` (a location,
not a hyper-parameter) or ``identity=False`` (a setting that cannot change what is trained, such
as the evaluation batch), so adding a field never renames old runs and moving data never does.
``check_fields`` refuses, before anything is built, a value outside a field's choices or
``bounds`` and a number that is not finite. A subclass that re-declares a field with a plain
default keeps its parent's help text, choices and bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from typing import Any

from dsd.errors import ConfigError

_NO_DEFAULT: Any = dataclasses.MISSING


def param(
    default: Any = _NO_DEFAULT,
    help: str = "",
    *,
    choices: Iterable[Any] | None = None,
    bounds: tuple[float | None, float | None] | None = None,
    path: bool = False,
    identity: bool = True,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its help text, its allowed values (``choices``, or inclusive
    ``bounds`` where None is open), whether it is a path, and whether it enters a run's identity."""
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "bounds": bounds,
        "path": path,
        "identity": None if identity else False,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _field_meta(config_type: type, name: str, key: str) -> Any:
    """``key`` of the field's metadata, from the nearest class in the MRO that declares it."""
    for klass in config_type.__mro__:
        for field in dataclasses.fields(klass) if dataclasses.is_dataclass(klass) else ():
            if field.name == name and field.metadata.get(key) is not None:
                return field.metadata[key]
    return None


def help_of(config_type: type, name: str) -> str:
    """The help text of a field (inherited from a parent class if re-declared without one)."""
    return _field_meta(config_type, name, "help") or ""


def choices_of(config_type: type, name: str) -> tuple[Any, ...] | None:
    return _field_meta(config_type, name, "choices")


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def config_fields(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def path_fields(config_type: type) -> set[str]:
    """Names of the fields marked ``path=True`` (locations, kept out of the run's hash)."""
    return {f.name for f in dataclasses.fields(config_type) if _field_meta(config_type, f.name, "path")}


def non_default_fields(config: Any, with_non_identity: bool = False) -> dict[str, Any]:
    """Fields of a config dataclass that differ from their defaults, without the path fields and
    (unless ``with_non_identity``, the rule of runs written before it) those marked
    ``identity=False``: what of it enters a run's identity."""
    paths = path_fields(type(config))
    changed = {}
    for field in dataclasses.fields(config):
        excluded = not with_non_identity and _field_meta(type(config), field.name, "identity") is False
        if field.name in paths or excluded:
            continue
        value = getattr(config, field.name)
        if value != default_of(field):
            changed[field.name] = value
    return changed


def check_fields(config: Any, bounds: bool = True) -> None:
    """Refuse a value outside a field's choices or (with ``bounds``) its bounds, or a number that
    is not finite, naming the flag, the value and what it may be (``ConfigError``). A task checks
    its bounds once placeholders (a 0 meaning "the dataset's default") are resolved."""
    for field in dataclasses.fields(config):
        flag, value = flag_name(field.name), getattr(config, field.name)
        choices = choices_of(type(config), field.name)
        if choices is not None and value not in choices:
            raise ConfigError(f"{flag} {value!r} is not one of: {', '.join(map(str, choices))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{flag} {value!r} is not a finite number; give one {_range(config, field)}")
        low, high = (_field_meta(type(config), field.name, "bounds") if bounds else None) or (None, None)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"{flag} {value!r} is out of range: {_range(config, field)}")


def _range(config: Any, field: dataclasses.Field) -> str:
    """A field's allowed values in words: ``at least 0``, ``from 0 to 1``, ``any number``."""
    low, high = _field_meta(type(config), field.name, "bounds") or (None, None)
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    return f"at most {high:g}" if high is not None else "(any finite value)"


# ---------------------------------------------------------------------- command-line flags
def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def help_text(text: str) -> str:
    """A help text as argparse must receive it: it %-formats help, so a literal ``%`` (``S30%``)
    is doubled."""
    return text.replace("%", "%%")


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_type: type,
    title: str = "",
    fields: Iterable[str] | None = None,
) -> None:
    """One flag per field of a config dataclass (or of ``fields`` only): typed, defaulted, with the
    field's help and choices. ``parser``: a parser (the flags get a group titled ``title``) or a
    group of one. An optional on/off field (``bool | None``) gets ``--x``/``--no-x`` with no default."""
    hints = typing.get_type_hints(config_type)
    group = (
        parser.add_argument_group(title or f"{config_type.__name__} (task hyper-parameters)")
        if isinstance(parser, argparse.ArgumentParser)
        else parser
    )
    wanted = None if fields is None else set(fields)
    for field in dataclasses.fields(config_type):
        if wanted is not None and field.name not in wanted:
            continue
        kind = hints[field.name]
        default = default_of(field)
        text = help_text(help_of(config_type, field.name))
        choices = choices_of(config_type, field.name)
        if kind in (bool, bool | None):
            group.add_argument(
                flag_name(field.name), action=argparse.BooleanOptionalAction, default=default, help=text
            )
        elif kind in (int, float, str):
            shown = f"{text} " if text else ""
            group.add_argument(
                flag_name(field.name),
                type=kind,
                default=default,
                choices=choices,
                metavar=None if choices else kind.__name__.upper(),
                help=f"{shown}(default: {help_text(repr(default))})",
            )
        else:
            raise TypeError(
                f"{config_type.__name__}.{field.name}: flags support bool/int/float/str, not {kind}"
            )


def config_from_args(config_type: type, args: argparse.Namespace) -> Any:
    return config_type(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_type)})
