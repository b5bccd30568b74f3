"""Training: the Trainer, its configuration, state, callbacks, checkpoints and plugins.

The modules, each importing only ones before it: :mod:`~lenet5.training.config` (the
settings) and :mod:`~lenet5.training.recipes` (named sets of them),
:mod:`~lenet5.training.distributed` (the processes of a DDP run),
:mod:`~lenet5.training.state` (``TrainState``, every value of one fit, as plain data),
:mod:`~lenet5.training.checkpoint` (the checkpoint format both ways, and the resume rules),
:mod:`~lenet5.training.callbacks` (the hook API and the built-ins),
:mod:`~lenet5.training.plugins` (callbacks by name), :mod:`~lenet5.training.distill`
(knowledge distillation), :mod:`~lenet5.training.optim` (optimizer, schedule, EMA and
precision), :mod:`~lenet5.training.trainer` (``Trainer``: the fit, read top to bottom:
set-up, epochs, step, validation) and :mod:`~lenet5.training.run` (the command line's run
folder).

Import the everyday names from :mod:`lenet5` (``from lenet5 import Trainer, Checkpoint``)
and the rest from their modules (``from lenet5.training.plugins import create_callback``).
The names this package gave before the package was layered still resolve here, so older
code keeps working; nothing is imported until it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []

# Names older code imports from lenet5.training -> the module that defines each.
_COMPATIBLE = {
    "HOOKS": "training.callbacks",
    "CSVLogger": "training.callbacks",
    "Callback": "training.callbacks",
    "CallbackError": "training.callbacks",
    "Checkpoint": "training.callbacks",
    "ConsoleLogger": "training.callbacks",
    "DevicePlacement": "training.callbacks",
    "EarlyStopping": "training.callbacks",
    "PeriodicValidation": "training.callbacks",
    "ProgressBar": "training.callbacks",
    "Seeding": "training.callbacks",
    "Timer": "training.callbacks",
    "UnknownCallbackError": "training.callbacks",
    "DeviceError": "devices",
    "CheckpointError": "training.checkpoint",
    "ConfigError": "training.config",
    "TrainConfig": "training.config",
    "DistributedError": "training.distributed",
    "ENTRY_POINT_GROUP": "training.plugins",
    "available_callbacks": "training.plugins",
    "create_callback": "training.plugins",
    "TrainState": "training.state",
    "Trainer": "training.trainer",
    "EvalResult": "inference",
    "evaluate": "inference",
}


def __getattr__(name: str) -> Any:
    home = _COMPATIBLE.get(name)
    if home is None:
        raise AttributeError(f"module 'lenet5.training' has no attribute {name!r}")
    # Relative to the package root: hubconf.py loads this package under a private name.
    root = __name__.rpartition(".")[0]
    return getattr(importlib.import_module(f"{root}.{home}"), name)
