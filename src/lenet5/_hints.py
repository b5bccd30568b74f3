"""What the user reads: the "did you mean ...?" hint of every error message about a
misspelt name, warnings that point at the user's own line, and public names that say where
the user imports them from."""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

__all__ = ["did_you_mean", "publish", "warn"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` pointing at the first caller outside this package.

    A fixed ``stacklevel`` is right only at one call depth; this walks up the stack past the
    package's own frames instead, so the warning names the user's line (``fit(...)`` in
    their script, or their callback) however deep inside the package it was raised.
    """
    frame = sys._getframe(0)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


def publish(module: str, namespace: dict[str, Any]) -> None:
    """Give every name of ``namespace["__all__"]`` that a private module of the package
    defines (``lenet5.data._imageset.ImageSet``, ``lenet5._onnx_graph.ExportError``) the
    public ``__module__`` ``module`` (``lenet5.data``, ``lenet5.export``), so that reprs,
    error messages, pickles and the API reference name the path a user imports it from.

    Called at the end of a public module's source with ``__name__, globals()``.
    """
    for name in namespace.get("__all__", ()):
        value = namespace.get(name)
        home = getattr(value, "__module__", None)
        if isinstance(home, str) and _is_private(home):
            value.__module__ = module


def _is_private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == __name__.split(".")[0] and any(p.startswith("_") for p in parts[1:])
