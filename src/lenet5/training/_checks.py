"""The checks :class:`~lenet5.TrainConfig` runs on its fields, and the error they raise.

Import :class:`ConfigError` from :mod:`lenet5` or :mod:`lenet5.training.config`; this module
only keeps that one small.
"""

from __future__ import annotations

import math

__all__ = ["ConfigError", "check_norm", "is_number", "non_negative_int", "one_of", "positive_int"]


class ConfigError(ValueError):
    """A training setting has a value that cannot work."""


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(
    name: str, value: str, choices: tuple[str, ...], alternative: str = "", *, shown: str = ""
) -> None:
    """Refuse a name that is not among ``choices``, listing them."""
    if value not in choices:
        message = f"unknown {name} {shown or value!r}; choose one of {', '.join(choices)}"
        raise ConfigError(f"{message} {alternative}" if alternative else message)


def positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def non_negative_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def check_norm(mean: object, std: object) -> None:
    """Refuse a normalisation that is half given, not finite, or with ``std <= 0``."""
    if (mean is None) != (std is None):
        raise ConfigError(
            f"give mean and std together (got mean={mean!r}, std={std!r}); "
            "None for both uses the data's own statistics"
        )
    if mean is None:
        return
    if not (is_number(mean) and math.isfinite(mean)):  # type: ignore[arg-type]
        raise ConfigError(f"mean must be a finite number (in [0, 1] units), got {mean!r}")
    if not (is_number(std) and math.isfinite(std) and std > 0):  # type: ignore[arg-type, operator]
        raise ConfigError(f"std must be a positive number (in [0, 1] units), got {std!r}")
