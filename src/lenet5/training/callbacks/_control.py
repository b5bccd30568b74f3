"""The built-ins that decide what happens to a run: checkpoints and early stopping."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from ..._hints import warn
from ..._io import CHECKPOINTS_DIR, remove_leftovers
from ..checkpoint import CheckpointConnector, find_checkpoints
from ..state import TrainState
from ._base import Callback

__all__ = ["Checkpoint", "EarlyStopping"]


class Checkpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs (and after the last one).

    When training stops mid-epoch (``state.stop()``, e.g. on Ctrl-C in ``lenet5 train``), a
    checkpoint ``<dir>/epoch-NNNN-batch-BBBBBB`` records the progress within the epoch.

    Each checkpoint is a folder ``<dir>/epoch-NNNN`` holding ``model.safetensors`` and
    ``trainer.pt`` (optimizer, scheduler, random states, history and callback states); it is
    written to a temporary folder and renamed into place, and ``<dir>/latest`` names the
    newest one, so a crash never leaves a half-written checkpoint. Resume with
    ``Trainer.fit(..., resume=dir)``. The format is
    :class:`~lenet5.training.checkpoint.CheckpointConnector`'s.

    With ``monitor``, the checkpoint with the best value of that metric so far is also kept
    as ``<dir>/best`` (saved after each validation that improves it, also those of
    ``val_every_steps``); ``best_score`` and ``best_path`` say which, and they come back on
    resume.

    A fit never overwrites another run's checkpoints: when ``directory`` already holds
    checkpoints and the fit does not resume from them (a second ``fit`` of the same
    trainer, or a new run pointed at an old folder), it writes into the first free
    ``<directory>-2``, ``<directory>-3``... instead, with a warning, and
    :attr:`directory` says where.

    When a fit starts, the temporaries that a crashed save left in ``directory`` are
    removed: one writer per checkpoint folder (``lenet5 train`` holds a lock on its run
    folder). A run stopped with ``state.stop()`` is saved when it ends unless its last
    checkpoint already holds its last step. A failed save (a full disk) raises
    :class:`~lenet5.WriteError` naming the folder and the cause, and leaves the
    earlier checkpoints as they were.

    Args:
        directory: Where checkpoints go.
        every: Epochs between checkpoints.
        keep: How many of the newest checkpoints to keep (``0`` keeps all).
        monitor: A metric (``"val_accuracy"``, ``"val_loss"``, ``"val_<name>_accuracy"``)
            whose best checkpoint is kept as ``best``; ``None``: none.
        mode: ``"max"`` if larger ``monitor`` values are better, ``"min"`` if smaller.

    Attributes:
        directory: Where the current (or latest) fit writes.
        last_path: The latest checkpoint written.
        best_score: The best ``monitor`` value so far (``None`` before a validation).
        best_path: ``<directory>/best`` once written.
    """

    order = 90
    rank_zero_only = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        every: int = 1,
        keep: int = 2,
        *,
        monitor: str | None = None,
        mode: str = "max",
    ) -> None:
        if every < 1 or keep < 0:
            raise ValueError(f"Checkpoint needs every >= 1 and keep >= 0, got {every}, {keep}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self._base = Path(directory)
        self.directory = self._base
        self.every = every
        self.keep = keep
        self.monitor = monitor
        self.mode = mode
        self.last_path: Path | None = None
        self.best_score: float | None = None
        self.best_path: Path | None = None
        self._saved_step: int | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self._saved_step = None
        if not state.is_main_process:
            return
        self.directory = self._directory_for(state)
        if self.directory.is_dir():
            remove_leftovers(self.directory)
        if state.resume_from is None:  # a new run: no best of an earlier one
            self.best_score, self.best_path = None, None

    def _directory_for(self, state: TrainState) -> Path:
        """The base folder, unless it holds another run's checkpoints: then the first free
        ``<base>-N``."""
        base = self._base
        if not find_checkpoints(base) or _resumes_from(state.resume_from, base):
            return base
        for n in itertools.count(2):
            other = base.with_name(f"{base.name}-{n}")
            if not find_checkpoints(other):
                warn(
                    f"{base} holds the checkpoints of another run, which this fit does not "
                    f"resume from; writing this run's into {other} instead (resume=... to "
                    "continue that run, or give Checkpoint another directory)"
                )
                return other
        raise AssertionError("unreachable")  # pragma: no cover

    def on_validation_end(self, state: TrainState) -> None:
        if self.monitor is None or not state.is_main_process:
            return
        if self.monitor not in state.metrics:
            raise KeyError(
                f"Checkpoint monitors {self.monitor!r} but the metrics are {sorted(state.metrics)}"
            )
        value = state.metrics[self.monitor]
        better = self.best_score is None or (
            value > self.best_score if self.mode == "max" else value < self.best_score
        )
        if better:
            self.best_score = value
            self.best_path = CheckpointConnector(state).save(self.directory, name="best")

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.is_main_process:
            return
        last = state.epoch == state.config.epochs or state.stop_requested
        if state.epoch % self.every == 0 or last:
            self.save(state)

    def on_fit_end(self, state: TrainState) -> None:
        if not state.is_main_process:
            return
        # Stopped mid-epoch: keep the progress, resumable exactly. Stopped after an epoch
        # that was not saved (the stop became known to this process after on_epoch_end,
        # e.g. asked for on another process): save it now.
        unsaved = state.stop_requested and self._saved_step != state.global_step
        if not state.epoch_complete or unsaved:
            self.save(state)

    def save(self, state: TrainState) -> Path:
        """Write a checkpoint of ``state`` now and return its folder."""
        self.last_path = CheckpointConnector(state).save(self.directory)
        self._saved_step = state.global_step
        if self.keep:
            CheckpointConnector.prune(self.directory, self.keep, newest=self.last_path)
        return self.last_path

    def state_dict(self) -> dict[str, Any]:
        if self.monitor is None:
            return {}
        return {"best_score": self.best_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = state.get("best_score")
        if self.best_score is not None and (self.directory / "best").is_dir():
            self.best_path = self.directory / "best"


def _resumes_from(resume: Path | None, base: Path) -> bool:
    """Whether ``resume`` names ``base``, a checkpoint in it, or the run folder around it."""
    if resume is None:
        return False
    resume, base = resume.resolve(), base.resolve()
    return resume == base or base in resume.parents or base == resume / CHECKPOINTS_DIR


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
