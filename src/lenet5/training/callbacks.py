"""The callback API and the built-in callbacks.

A callback is an object with any of the hook methods in :data:`HOOKS`; each hook takes the
one :class:`~lenet5.training.state.TrainState`. Callbacks run in ascending ``order``; ties
keep the order in which they were given. The built-ins cover device placement, seeding,
validation scheduling, logging, checkpoints and early stopping; subclass or replace any of
them.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any, ClassVar

import torch

from .._io import atomic_write_text
from ..devices import DeviceError, resolve_device
from .state import TrainState

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
    "Timer",
    "UnknownCallbackError",
    "check_callback",
]

#: The hook names, in the order a fit calls them.
HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
    "on_exception",
)


class CallbackError(TypeError):
    """A callback is malformed (e.g. a misspelt hook), or a plugin fails to load."""


class UnknownCallbackError(CallbackError, LookupError):
    """No built-in or plugin callback has the name asked for."""


class Callback:
    """Base class of all callbacks.

    Override any hook in :data:`HOOKS`. A method whose name starts with ``on_`` but is not a
    hook is rejected when the callback is registered, so a typo never silently does nothing.

    Attributes:
        order: Position among the callbacks; lower runs first, ties keep list order.
        rank_zero_only: Run the hooks only in the main process (rank 0) of a distributed
            run, as loggers and checkpoint writers should. ``state.rank`` and
            ``state.is_main_process`` are there for callbacks that decide for themselves.
    """

    order: ClassVar[int] = 0
    rank_zero_only: ClassVar[bool] = False

    @property
    def key(self) -> str:
        """The name under which this callback's state is stored in checkpoints."""
        return type(self).__name__

    def on_fit_start(self, state: TrainState) -> None:
        """Called once before training, before the optimizer is built."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Called at the start of every epoch (``state.epoch`` is already the new epoch)."""

    def on_batch_start(self, state: TrainState) -> None:
        """Called before every optimisation step."""

    def on_batch_end(self, state: TrainState) -> None:
        """Called after every optimisation step (``state.batch_loss`` is that step's loss)."""

    def on_validation_end(self, state: TrainState) -> None:
        """Called after validation, with ``val_loss`` and ``val_accuracy`` in ``state.metrics``."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called at the end of every epoch, after validation if there was one."""

    def on_fit_end(self, state: TrainState) -> None:
        """Called once after training ends normally (also after :meth:`TrainState.stop`)."""

    def on_exception(self, state: TrainState) -> None:
        """Called when training fails; ``state.exception`` holds the exception."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors, numbers, strings, lists and dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order})"


def check_callback(callback: object) -> None:
    """Reject objects that are not usable callbacks.

    Raises:
        CallbackError: If ``callback`` is not a :class:`Callback`, or defines an ``on_*``
            method that is not a hook (a misspelt hook would otherwise never run).
    """
    if not isinstance(callback, Callback):
        raise CallbackError(
            f"{callback!r} is not a lenet5.Callback; subclass lenet5.Callback, or pass the "
            "name of a built-in or plugin callback"
        )
    for name in dir(type(callback)):
        if name.startswith("on_") and name not in HOOKS and callable(getattr(callback, name)):
            import difflib

            close = difflib.get_close_matches(name, HOOKS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CallbackError(
                f"{type(callback).__name__}.{name} is not a hook{hint} (hooks: {', '.join(HOOKS)})"
            )


class Seeding(Callback):
    """Seed every random number generator and, if asked, make the run deterministic.

    Seeds Python's ``random``, NumPy (when installed), torch (CPU and CUDA) and the trainer's
    shuffling generator. With ``deterministic`` it also calls
    ``torch.use_deterministic_algorithms(True)``, turns off cuDNN benchmarking and sets
    ``CUBLAS_WORKSPACE_CONFIG``, which cuBLAS reads when CUDA starts: if CUDA was already
    initialised without it, a warning says so.

    Args:
        seed: Overrides ``config.seed`` when given.
        deterministic: Overrides ``config.deterministic`` when given.
    """

    order = -100

    def __init__(self, seed: int | None = None, deterministic: bool | None = None) -> None:
        self.seed = seed
        self.deterministic = deterministic
        self._previous: tuple[bool, bool, bool] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        seed = self.seed if self.seed is not None else state.config.seed
        deterministic = (
            self.deterministic if self.deterministic is not None else state.config.deterministic
        )
        if deterministic:
            # Process-wide switches: remember them, and put them back when the fit ends.
            self._previous = (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark,
            )
            self.make_deterministic()
        if seed is None:
            # The global generators are left alone, but the shuffling generator is new and
            # would start from torch's fixed default seed: every unseeded run would then
            # see the batches in the same order.
            state.generator.seed()
            return
        random.seed(seed)
        try:
            import numpy as np

            np.random.seed(seed % 2**32)
        except ImportError:  # pragma: no cover - numpy comes with torchvision
            pass
        torch.manual_seed(seed)  # also seeds every CUDA device
        # Each rank shuffles with the same generator so that shards are disjoint.
        state.generator.manual_seed(seed)

    def on_fit_end(self, state: TrainState) -> None:
        self._restore()

    def on_exception(self, state: TrainState) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            algorithms, cudnn_deterministic, cudnn_benchmark = self._previous
            torch.use_deterministic_algorithms(algorithms)
            torch.backends.cudnn.deterministic = cudnn_deterministic
            torch.backends.cudnn.benchmark = cudnn_benchmark
            self._previous = None

    @staticmethod
    def make_deterministic() -> None:
        """Switch torch to deterministic algorithms (warns if CUDA started too early)."""
        if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
            initialized = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
            if torch.cuda.is_available() and initialized:
                warnings.warn(
                    "deterministic=True but CUDA was initialised before CUBLAS_WORKSPACE_CONFIG "
                    "was set, so cuBLAS may not be deterministic; set "
                    "CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before starting Python",
                    stacklevel=3,
                )
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


class DevicePlacement(Callback):
    """Pick the training device and move the model and the resident data onto it.

    Args:
        device: Overrides ``config.device`` when given (``"auto"`` picks CUDA when present).
    """

    order = -90

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = device

    def on_fit_start(self, state: TrainState) -> None:
        device = resolve_device(self.device if self.device is not None else state.config.device)
        if state.world_size > 1 and device.type == "cuda" and device.index is None:
            if state.local_rank >= torch.cuda.device_count():
                raise DeviceError(
                    f"process {state.rank} (local rank {state.local_rank}) has no GPU of its "
                    f"own: {torch.cuda.device_count()} present; start at most that many "
                    "processes per machine (--nproc_per_node), or train on the CPU "
                    "(--device cpu)"
                )
            device = torch.device("cuda", state.local_rank)  # one GPU per process
        state.device = device
        state.model.to(device)
        from ..data import ImageSet

        if isinstance(state.train_data, ImageSet):
            state.train_data = state.train_data.to(device)
        if isinstance(state.val_data, ImageSet):
            state.val_data = state.val_data.to(device)


class PeriodicValidation(Callback):
    """Validate every ``every`` epochs and after the last epoch.

    Args:
        every: Overrides ``config.val_every`` when given; ``0`` turns validation off.
    """

    order = -50

    def __init__(self, every: int | None = None) -> None:
        self.every = every

    def on_epoch_start(self, state: TrainState) -> None:
        every = self.every if self.every is not None else state.config.val_every
        if every > 0 and (state.epoch % every == 0 or state.epoch == state.config.epochs):
            state.validate = True


class ConsoleLogger(Callback):
    """Print the reference log line after each validated epoch.

    ``Epoch 20 | Loss: 0.0093 | Validation Accuracy: 98.81%``, where ``Loss`` is the mean
    training loss of the epoch. Silent unless ``config.verbose`` and on the main process.

    Args:
        stream: Where to print; standard output by default.
    """

    order = 80
    rank_zero_only = True

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def on_epoch_end(self, state: TrainState) -> None:
        if not (state.config.verbose and state.is_main_process and state.validate):
            return
        line = f"Epoch {state.epoch} | Loss: {state.metrics['loss']:.4f}"
        if "val_accuracy" in state.metrics:
            line += f" | Validation Accuracy: {state.metrics['val_accuracy']:.2f}%"
        if state.stop_requested:
            line += f" | stopped: {state.stop_reason}"
        print(line, file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch with the latest loss and the epoch's training accuracy.

    Drawn only on an interactive terminal (and when ``config.verbose``); the loss shown is
    read from the device every ``refresh`` steps, not every step.

    Args:
        refresh: Steps between updates of the displayed loss.
        force: Draw even when standard error is not a terminal.
    """

    order = 100
    rank_zero_only = True

    def __init__(self, refresh: int = 50, force: bool = False) -> None:
        self.refresh = refresh
        self.force = force
        self._bar: Any = None

    def _enabled(self, state: TrainState) -> bool:
        return bool(
            state.config.verbose and state.is_main_process and (self.force or sys.stderr.isatty())
        )

    def on_epoch_start(self, state: TrainState) -> None:
        if not self._enabled(state):
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=state.steps_per_epoch,
            desc=f"Epoch {state.epoch}/{state.config.epochs}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def on_batch_end(self, state: TrainState) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update(1)
        if bar.n % self.refresh == 0:
            bar.set_postfix(
                loss=f"{state.batch_loss:.4f}", acc=f"{state.epoch_accuracy:.2f}%", refresh=False
            )

    def on_epoch_end(self, state: TrainState) -> None:
        self._close()

    def on_fit_end(self, state: TrainState) -> None:
        self._close()  # a run stopped mid-epoch gets no on_epoch_end

    def on_exception(self, state: TrainState) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class CSVLogger(Callback):
    """Write one CSV row per epoch: epoch, step, loss, lr, validation metrics, time.

    The whole file is rewritten atomically after every epoch, so a crash never leaves a
    half-written row, and on resume the rows come back from the checkpoint.

    Args:
        path: The CSV file to write.
    """

    order = 85
    rank_zero_only = True
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "epoch",
        "global_step",
        "loss",
        "accuracy",
        "lr",
        "val_loss",
        "val_accuracy",
        "epoch_seconds",
    )

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.is_main_process:
            return
        row = {"epoch": float(state.epoch), "global_step": float(state.global_step)}
        row.update(state.metrics)
        self.rows.append(row)
        columns = list(self.COLUMNS) + sorted({k for r in self.rows for k in r} - set(self.COLUMNS))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _csv_value(k, r.get(k)) for k in columns})
        atomic_write_text(self.path, buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]


def _csv_value(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in ("epoch", "global_step"):
        return str(int(value))
    return f"{value:.6g}"


class Checkpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs (and after the last one).

    When training stops mid-epoch (``state.stop()``, e.g. on Ctrl-C in ``lenet5 train``), a
    checkpoint ``<dir>/epoch-NNNN-batch-BBBBBB`` records the progress within the epoch.

    Each checkpoint is a folder ``<dir>/epoch-NNNN`` holding ``model.safetensors`` and
    ``trainer.pt`` (optimizer, scheduler, random states, history and callback states); it is
    written to a temporary folder and renamed into place, and ``<dir>/latest`` names the
    newest one, so a crash never leaves a half-written checkpoint. Resume with
    ``Trainer.fit(..., resume=dir)``.

    Args:
        directory: Where checkpoints go.
        every: Epochs between checkpoints.
        keep: How many of the newest checkpoints to keep (``0`` keeps all).
    """

    order = 90
    rank_zero_only = True

    def __init__(self, directory: str | os.PathLike[str], every: int = 1, keep: int = 2) -> None:
        if every < 1 or keep < 0:
            raise ValueError(f"Checkpoint needs every >= 1 and keep >= 0, got {every}, {keep}")
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.last_path: Path | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.is_main_process:
            return
        last = state.epoch == state.config.epochs or state.stop_requested
        if state.epoch % self.every == 0 or last:
            self.save(state)

    def on_fit_end(self, state: TrainState) -> None:
        if state.is_main_process and not state.epoch_complete:
            self.save(state)  # stopped mid-epoch: keep the progress, resumable exactly

    def save(self, state: TrainState) -> Path:
        """Write a checkpoint of ``state`` now and return its folder."""
        from .checkpoint import prune_checkpoints, save_checkpoint

        self.last_path = save_checkpoint(self.directory, state)
        if self.keep:
            prune_checkpoints(self.directory, self.keep, newest=self.last_path)
        return self.last_path


class EarlyStopping(Callback):
    """Stop when a validation metric has not improved for ``patience`` validations.

    Args:
        monitor: The metric to watch (``"val_accuracy"`` or ``"val_loss"``...).
        mode: ``"max"`` if larger is better, ``"min"`` if smaller is better.
        patience: Validations without improvement before stopping.
        min_delta: The smallest change that counts as an improvement.
    """

    order = 70

    def __init__(
        self,
        monitor: str = "val_accuracy",
        mode: str = "max",
        patience: int = 3,
        min_delta: float = 0.0,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.bad = 0

    def on_validation_end(self, state: TrainState) -> None:
        if self.monitor not in state.metrics:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but the metrics are "
                f"{sorted(state.metrics)}"
            )
        value = state.metrics[self.monitor]
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.bad = value, state.epoch, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            state.stop(
                f"{self.monitor} did not improve for {self.patience} validations "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = int(state.get("best_epoch", 0))
        self.bad = int(state.get("bad", 0))


class Timer(Callback):
    """Record ``epoch_seconds`` (wall time of each epoch, validation included) in the metrics."""

    order = -80

    def __init__(self) -> None:
        self._start = 0.0

    def on_epoch_start(self, state: TrainState) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        if state.device.type == "cuda":
            torch.cuda.synchronize(state.device)
        state.metrics["epoch_seconds"] = time.perf_counter() - self._start
