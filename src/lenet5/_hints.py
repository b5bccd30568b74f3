"""What points a user at the fix: the "did you mean ...?" hint of every error message about
a misspelt name, and warnings that point at the user's own line."""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable

__all__ = ["did_you_mean", "warn"]

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
