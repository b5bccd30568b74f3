"""Moved: the checks of :class:`~lenet5.TrainConfig` and :class:`ConfigError` live in
:mod:`lenet5.training.config`. Kept only for imports that still name this module."""

from __future__ import annotations

from .config import (
    ConfigError,
    check_norm,
    is_number,
    non_negative_int,
    one_of,
    positive_int,
)

__all__ = ["ConfigError", "check_norm", "is_number", "non_negative_int", "one_of", "positive_int"]
