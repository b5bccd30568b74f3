"""Training: the Trainer, its configuration, state, callbacks and plugins."""

from .callbacks import (
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
    UnknownCallbackError,
)
from .checkpoint import CheckpointError
from .config import ConfigError, TrainConfig
from .distributed import DistributedError
from .plugins import ENTRY_POINT_GROUP, available_callbacks, create_callback
from .state import TrainState
from .trainer import EvalResult, Trainer, evaluate

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOKS",
    "CSVLogger",
    "Callback",
    "CallbackError",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "ConsoleLogger",
    "DeviceError",
    "DevicePlacement",
    "DistributedError",
    "EarlyStopping",
    "EvalResult",
    "PeriodicValidation",
    "ProgressBar",
    "Seeding",
    "Timer",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "UnknownCallbackError",
    "available_callbacks",
    "create_callback",
    "evaluate",
]
