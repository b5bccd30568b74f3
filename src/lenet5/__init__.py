"""lenet5: the classic LeNet-5 for MNIST, a callback-driven Trainer and pretrained weights.

The names below are the everyday API; each is defined once, in the module named in
:doc:`/api/index`. They are imported on first use, so ``import lenet5`` (and the ``lenet5``
command's ``--help``) does not load torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._io import WriteError
    from .data import DataError, ImageSet, NormalizationWarning, load_dataset, load_mnist, normalize
    from .devices import DeviceError
    from .export import ExportError
    from .inference import EvalResult, evaluate
    from .model import LeNet5
    from .predict import Predictor
    from .preprocess import ImageError
    from .training.callbacks import (
        Callback,
        CallbackError,
        Checkpoint,
        ConsoleLogger,
        CSVLogger,
        DevicePlacement,
        EarlyStopping,
        PeriodicValidation,
        ProgressBar,
        Seeding,
        TensorBoardLogger,
        Timer,
        UnknownCallbackError,
    )
    from .training.checkpoint import CheckpointError, ResumeError
    from .training.config import ConfigError, TrainConfig
    from .training.distill import Distillation
    from .training.distributed import DistributedError
    from .training.state import TrainState
    from .training.study import Study
    from .training.trainer import Trainer
    from .weights import Weights, WeightsError, get_weights

# Public name -> the module that defines it.
_HOMES = {
    "CSVLogger": "training.callbacks",
    "Callback": "training.callbacks",
    "CallbackError": "training.callbacks",
    "Checkpoint": "training.callbacks",
    "CheckpointError": "training.checkpoint",
    "ConfigError": "training.config",
    "ConsoleLogger": "training.callbacks",
    "DataError": "data",
    "Distillation": "training.distill",
    "NormalizationWarning": "data",
    "DeviceError": "devices",
    "DevicePlacement": "training.callbacks",
    "DistributedError": "training.distributed",
    "EarlyStopping": "training.callbacks",
    "EvalResult": "inference",
    "ExportError": "export",
    "ImageError": "preprocess",
    "ImageSet": "data",
    "LeNet5": "model",
    "PeriodicValidation": "training.callbacks",
    "Predictor": "predict",
    "ProgressBar": "training.callbacks",
    "ResumeError": "training.checkpoint",
    "Seeding": "training.callbacks",
    "TensorBoardLogger": "training.callbacks",
    "Timer": "training.callbacks",
    "TrainConfig": "training.config",
    "TrainState": "training.state",
    "Study": "training.study",
    "Trainer": "training.trainer",
    "UnknownCallbackError": "training.callbacks",
    "Weights": "weights",
    "WriteError": "_io",
    "WeightsError": "weights",
    "evaluate": "inference",
    "get_weights": "weights",
    "load_dataset": "data",
    "load_mnist": "data",
    "normalize": "data",
}

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackError",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "ConsoleLogger",
    "DataError",
    "DeviceError",
    "DevicePlacement",
    "Distillation",
    "DistributedError",
    "EarlyStopping",
    "EvalResult",
    "ExportError",
    "ImageError",
    "ImageSet",
    "LeNet5",
    "NormalizationWarning",
    "PeriodicValidation",
    "Predictor",
    "ProgressBar",
    "ResumeError",
    "Seeding",
    "Study",
    "TensorBoardLogger",
    "Timer",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "UnknownCallbackError",
    "Weights",
    "WeightsError",
    "WriteError",
    "__version__",
    "evaluate",
    "get_weights",
    "load_dataset",
    "load_mnist",
    "normalize",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lenet5' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
