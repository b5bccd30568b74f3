"""``lenet5 train``'s training flags, generated from :class:`~lenet5.TrainConfig`'s fields.

Each field becomes ``--field-name`` with the help, choices and placeholder that its
``metadata`` gives (see :mod:`lenet5.training.config`) and the type of its annotation; the
default shown is the field's. A flag overrides the recipe and the resumed run's settings only
when it is given, so the parser records which flags were.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..training.config import RECIPES, ConfigError, TrainConfig

__all__ = ["ConfigFlag", "add_config_flags", "config_flags", "config_from_args"]

# Where the parser records the training flags given on the command line.
_GIVEN = "config_flags_given"
# Annotation names -> argparse types; the first of a union that is here is the flag's type.
_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool}
# The placeholders of numbers in the help (a count, a real number), unless metadata names one.
_METAVARS: dict[type, str] = {int: "N", float: "X"}


class ConfigFlag(NamedTuple):
    """How one config field appears on the command line.

    Attributes:
        field: The field's name (``batch_size``).
        flag: The flag (``--batch-size``).
        dest: The attribute the parsed value lands in.
        kind: The value's type (``int``, ``float``, ``str`` or ``bool``).
        negate: Whether the flag means the opposite of the field (``--quiet``, ``verbose``).
        default: The default shown in the help, as the flag spells it.
        options: Further keyword arguments of ``add_argument`` (help, choices, metavar).
    """

    field: str
    flag: str
    dest: str
    kind: type
    negate: bool
    default: Any
    options: Mapping[str, Any]


def _kind(f: dataclasses.Field[Any]) -> type:
    """The flag type of a field: from ``metadata["type"]``, else from its annotation."""
    if "type" in f.metadata:
        return f.metadata["type"]  # type: ignore[no-any-return]
    # Annotations are strings here (from __future__ import annotations in config.py).
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    for name in (part.strip() for part in text.split("|")):
        if name in _TYPES:
            return _TYPES[name]  # type: ignore[no-any-return]
    raise TypeError(
        f"{f.name}: cannot make a flag of a {text!r} field; give metadata 'type', or "
        "'flag': None for a setting the command line cannot express"
    )


def config_flags(cls: type[Any] = TrainConfig) -> list[ConfigFlag]:
    """The flags of a config dataclass's fields, in field order (fields with
    ``metadata["flag"] = None`` have none)."""
    flags = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "flag" in meta and meta["flag"] is None:
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        negate = bool(meta.get("negate", False))
        default = f.default if f.default is not dataclasses.MISSING else None
        options = {k: meta[k] for k in ("help", "choices", "metavar") if k in meta}
        kind = _kind(f)
        if kind in _METAVARS and "metavar" not in options and "choices" not in options:
            options["metavar"] = _METAVARS[kind]
        flags.append(
            ConfigFlag(
                field=f.name,
                flag=flag,
                dest=flag.lstrip("-").replace("-", "_"),
                kind=kind,
                negate=negate,
                default=(not default) if negate else default,
                options=options,
            )
        )
    return flags


class _Given(argparse.Action):
    """Stores the value and records that the flag was given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        _record(namespace, self.dest)


class _GivenSwitch(argparse.BooleanOptionalAction):
    """``--name`` / ``--no-name``, recording that one of them was given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        _record(namespace, self.dest)


def _record(namespace: argparse.Namespace, dest: str) -> None:
    # A tuple, not a set: the parser's default for it is shared by every parse.
    setattr(namespace, _GIVEN, (*getattr(namespace, _GIVEN, ()), dest))


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type[Any] = TrainConfig,
) -> None:
    """Add a flag for every field of ``cls`` that has one."""
    for spec in config_flags(cls):
        if spec.kind is bool:
            action: type[argparse.Action] = _GivenSwitch
            extra: dict[str, Any] = {}
        else:
            action, extra = _Given, {"type": spec.kind}
        parser.add_argument(
            spec.flag, dest=spec.dest, action=action, default=spec.default, **extra, **spec.options
        )
    parser.set_defaults(**{_GIVEN: ()})


def given_flags(args: argparse.Namespace) -> set[str]:
    """The config fields whose flags were given on the command line (not their defaults)."""
    return set(getattr(args, _GIVEN, ()))


def config_from_args(
    args: argparse.Namespace,
    base: Mapping[str, Any] | None = None,
    cls: type[Any] = TrainConfig,
) -> Any:
    """The config that ``lenet5 train``'s arguments ask for.

    Starts from ``base`` (a resumed run's settings), applies ``--recipe`` over it, then the
    training flags that were given.

    Raises:
        ConfigError: If the result is not a valid config (or the recipe is unknown); the
            message starts with the flag when a given flag set the bad value.
    """
    values: dict[str, Any] = dict(base or {})
    recipe = getattr(args, "recipe", None)
    if recipe is not None:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        values.update(RECIPES[recipe])
    given = set(getattr(args, _GIVEN, ()))
    flags = {}
    for spec in config_flags(cls):
        if spec.dest in given:
            value = getattr(args, spec.dest)
            values[spec.field] = (not value) if spec.negate else value
            flags[spec.field] = spec.flag
    try:
        return cls.from_kwargs(values)
    except ConfigError as exc:
        field = getattr(exc, "field", None)
        if field in flags:  # name the flag that set it (once: "--augment: elastic: ...")
            message = str(exc).removeprefix(f"{field}: ")
            raise ConfigError(f"{flags[field]}: {message}", field) from None
        raise
