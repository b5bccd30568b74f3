"""Callbacks by name: the built-ins and third-party plugins.

A package ships a callback as a plugin by declaring an entry point in the
``lenet5.callbacks`` group, naming a :class:`~lenet5.Callback` subclass (or any callable that
returns a callback when called without arguments)::

    [project.entry-points."lenet5.callbacks"]
    wandb = "my_package.callbacks:WandbLogger"

Plugins are only imported when asked for by name (or listed), so a broken plugin never
affects runs that do not use it. A plugin cannot end the program either: anything it raises
while imported or built (``SystemExit`` and ``GeneratorExit`` included, only
``KeyboardInterrupt`` excepted) makes it a failed plugin, a :class:`CallbackError` naming
it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .._hints import did_you_mean
from .callbacks import (
    Callback,
    CallbackError,
    EarlyStopping,
    ProgressBar,
    TensorBoardLogger,
    Timer,
    UnknownCallbackError,
    check_callback,
)

__all__ = ["ENTRY_POINT_GROUP", "available_callbacks", "create_callback", "resolve_callbacks"]

#: The entry-point group plugins register callbacks under.
ENTRY_POINT_GROUP = "lenet5.callbacks"

#: Built-in callbacks that can be created by name with no arguments.
BUILTIN: dict[str, Callable[[], Callback]] = {
    "early_stopping": EarlyStopping,
    "progress": ProgressBar,
    "tensorboard": TensorBoardLogger,
    "timer": Timer,
}


def _plugin_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"the package providing {ep.value!r}"
    return f"{dist.metadata['Name']} {dist.version}"


def _load(ep: EntryPoint) -> Callable[[], Callback]:
    try:
        factory = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a plugin cannot end the program
        raise CallbackError(
            f"plugin callback {ep.name!r} from {_distribution(ep)} failed to import "
            f"({type(exc).__name__}: {exc}); fix or uninstall that distribution"
        ) from exc
    if not callable(factory):
        raise CallbackError(
            f"plugin callback {ep.name!r} from {_distribution(ep)} points at {factory!r}, "
            "which is not a callback class"
        )
    return factory  # type: ignore[no-any-return]


def available_callbacks() -> dict[str, str]:
    """All callback names, built-in and plugin, with where each comes from.

    Plugins that fail to import are left out with a warning naming their distribution.
    """
    names = {name: "built-in" for name in BUILTIN}
    for name, ep in sorted(_plugin_entry_points().items()):
        try:
            _load(ep)
        except CallbackError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
            continue
        names.setdefault(name, _distribution(ep))
    return names


def create_callback(name: str) -> Callback:
    """Create a callback from its built-in or plugin name.

    Raises:
        CallbackError: If the name is unknown, or the plugin fails to import or to build.
    """
    if name in BUILTIN:
        callback = BUILTIN[name]()
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            known = sorted(set(BUILTIN) | set(plugins))
            raise UnknownCallbackError(
                f"unknown callback {name!r}{did_you_mean(name, known)}; known callbacks: "
                f"{', '.join(known)} (plugins register under the entry-point group "
                f"{ENTRY_POINT_GROUP!r})"
            )
        ep = plugins[name]
        factory = _load(ep)
        try:
            callback = factory()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a plugin cannot end the program
            raise CallbackError(
                f"plugin callback {name!r} from {_distribution(ep)} could not be created: {exc}"
            ) from exc
    check_callback(callback)
    return callback


def resolve_callbacks(items: Iterable[Callback | str | Any]) -> list[Callback]:
    """Turn a mix of callback objects and names into checked callback objects.

    Raises:
        CallbackError: For an unknown name or an object that is not a valid callback.
    """
    out = []
    for item in items:
        callback = create_callback(item) if isinstance(item, str) else item
        check_callback(callback)
        out.append(callback)
    return out
