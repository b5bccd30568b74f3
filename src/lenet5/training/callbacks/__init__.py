"""The callback API and the built-in callbacks.

A callback is an object with any of the hook methods in :data:`HOOKS`; each hook takes the
one :class:`~lenet5.training.state.TrainState`. Callbacks run in ascending ``order``; ties
keep the order in which they were given. The built-ins cover device placement, seeding,
validation scheduling, logging, checkpoints and early stopping; subclass or replace any of
them.

Import everything from here (``lenet5.training.callbacks.X``, or the everyday names from
:mod:`lenet5`); each name's ``__module__`` is this package. The private submodules are cut by
concept: ``_base`` (the API: the class, its hooks and the check), ``_setup`` (what sets a run
up and paces it: seeding, device, timing, validation schedule), ``_logging`` (console,
progress bar, CSV), ``_tensorboard`` (TensorBoard event files, an optional dependency) and
``_control`` (what ends or saves a run: checkpoints, early stopping).
"""

from __future__ import annotations

from ..._hints import publish
from ._base import HOOKS as _HOOKS
from ._base import Callback, CallbackError, UnknownCallbackError, check_callback
from ._control import Checkpoint, EarlyStopping
from ._logging import ConsoleLogger, CSVLogger, ProgressBar
from ._setup import DevicePlacement, PeriodicValidation, Seeding, Timer
from ._tensorboard import TensorBoardLogger

__all__ = [
    "HOOKS",
    "CSVLogger",
    "Callback",
    "CallbackError",
    "Checkpoint",
    "ConsoleLogger",
    "DevicePlacement",
    "EarlyStopping",
    "PeriodicValidation",
    "ProgressBar",
    "Seeding",
    "TensorBoardLogger",
    "Timer",
    "UnknownCallbackError",
    "check_callback",
]

# Bound again here, with its description: the API reference documents a name from the
# comment above it in the module it documents, which is this one.
#: The hook names in the order a fit calls them, :class:`Callback`'s ``on_*`` methods in the
#: order the class defines them (so a new hook is added to the class and nowhere else).
HOOKS: tuple[str, ...] = _HOOKS


publish(__name__, globals())
