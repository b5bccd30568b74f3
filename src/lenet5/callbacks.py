"""The callback API and built-in callbacks (``from lenet5.callbacks import Checkpoint``).

This module re-exports :mod:`lenet5.training.callbacks`; see there for the definitions.
"""

from .training.callbacks import (
    HOOKS,
    Callback,
    CallbackError,
    Checkpoint,
    ConsoleLogger,
    CSVLogger,
    DeviceError,
    DevicePlacement,
    EarlyStopping,
    PeriodicValidation,
    ProgressBar,
    Seeding,
    Timer,
)

__all__ = [
    "HOOKS",
    "CSVLogger",
    "Callback",
    "CallbackError",
    "Checkpoint",
    "ConsoleLogger",
    "DeviceError",
    "DevicePlacement",
    "EarlyStopping",
    "PeriodicValidation",
    "ProgressBar",
    "Seeding",
    "Timer",
]
