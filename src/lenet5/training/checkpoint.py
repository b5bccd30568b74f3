"""The checkpoint format, both directions: save, find, load, restore and prune.

A checkpoint is a folder ``epoch-NNNN`` (``epoch-NNNN-batch-BBBBBB`` when a run stopped
mid-epoch) with the weights as ``model.safetensors`` and the rest of the training state as
``trainer.pt``, which is read back with ``torch.load(weights_only=True)`` (tensors and plain
containers only, no arbitrary objects). The folder is written under a temporary name and
renamed into place; the text file ``latest`` beside it names the newest complete checkpoint
and is replaced atomically too.

:class:`CheckpointConnector` is the one place that knows what goes into ``trainer.pt`` and
how it comes back, each part's saving beside its restoring (as Lightning's checkpoint
connector does). The module-level functions are shortcuts to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from .._io import (
    CHECKPOINTS_DIR,
    LATEST_NAME,
    TRAINER_STATE_NAME,
    WEIGHTS_NAME,
    atomic_folder,
    atomic_write_text,
)

if TYPE_CHECKING:
    from .state import TrainState

__all__ = [
    "CheckpointConnector",
    "CheckpointError",
    "find_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
]

_NAME = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d+))?$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match the run resuming from it."""


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoint folders in ``folder``, oldest first (a mid-epoch one before its epoch)."""

    def progress(match: re.Match[str]) -> tuple[int, float]:
        batch = match.group(2)
        return int(match.group(1)), float(batch) if batch is not None else float("inf")

    found = sorted((progress(m), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return [p for _, p in found]


def _is_complete(folder: Path) -> bool:
    return (folder / TRAINER_STATE_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


class CheckpointConnector:
    """Saves a fit's :class:`~lenet5.training.state.TrainState` as a checkpoint and restores it.

    What a checkpoint holds: the weights, the optimizer (whose implementation flags belong to
    the device, so a restore keeps the current ones), the scheduler, the EMA, the epoch and
    step, the progress within an unfinished epoch, the random states, the history and the
    state of every callback that has one. Restoring a checkpoint and training on ends the
    run as if it had never stopped.

    Args:
        state: The fit being saved, or being filled in by a restore (its model, optimizer,
            scheduler and EMA already built, ``steps_per_epoch`` known).
    """

    #: The ``format_version`` written into ``trainer.pt``, and the only one read back.
    FORMAT_VERSION: ClassVar[int] = 1
    #: Settings that may differ between a checkpoint and the run resuming from it.
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset(
        {"epochs", "device", "verbose", "eval_batch_size", "val_every"}
    )

    def __init__(self, state: TrainState) -> None:
        self.state = state

    # ----------------------------------------------------------- the whole checkpoint

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a checkpoint into ``directory/epoch-NNNN`` and point ``latest`` at it.

        Returns:
            The checkpoint folder.
        """
        state, directory = self.state, Path(directory)
        name = f"epoch-{state.epoch:04d}"
        if not state.epoch_complete:
            name += f"-batch-{state.batch_in_epoch:06d}"
        # A rerun of the same epoch replaces the old checkpoint whole.
        with atomic_folder(directory / name) as tmp:
            weights = {
                k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()
            }
            save_file(weights, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            torch.save(self.dump(), tmp / TRAINER_STATE_NAME)
        atomic_write_text(directory / LATEST_NAME, name + "\n")
        return directory / name

    def dump(self) -> dict[str, Any]:
        """The contents of ``trainer.pt``: everything but the weights."""
        state = self.state
        return {
            "format_version": self.FORMAT_VERSION,
            "epoch": state.epoch,
            "global_step": state.global_step,
            "config": json.dumps(state.config.to_dict()),
            "optimizer": state.optimizer.state_dict() if state.optimizer is not None else None,
            "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
            "ema": state.ema.state_dict() if state.ema is not None else None,
            "history": [dict(h) for h in state.history],
            "epoch_progress": self._dump_progress(),
            "callbacks": self._dump_callbacks(),
            "rng": self._dump_rng(),
        }

    def restore(self, path: str | os.PathLike[str], *, stacklevel: int = 2) -> None:
        """Load the checkpoint that ``path`` means (see :meth:`find`) into the state.

        Args:
            path: A checkpoint folder, a folder of checkpoints or a run folder.
            stacklevel: As for :func:`warnings.warn`, counted from this method: where the
                warning about changed settings points (2, the default, is the caller).

        Raises:
            CheckpointError: If the checkpoint cannot be read, does not fit the model, or
                was trained for a different length with a learning-rate schedule.
        """
        state = self.state
        weights, saved = self.load(path)
        try:
            state.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {saved['path']} does not fit this model: {exc}"
            ) from exc
        self._check_config(saved, stacklevel + 1)
        self._restore_optimizer(saved["optimizer"])
        if state.scheduler is not None and saved["scheduler"] is not None:
            state.scheduler.load_state_dict(saved["scheduler"])
        if state.ema is not None and saved.get("ema") is not None:
            state.ema.load_state_dict(saved["ema"])
        state.epoch = int(saved["epoch"])
        state.global_step = int(saved["global_step"])
        self._restore_progress(saved.get("epoch_progress"))
        state.history = [dict(h) for h in saved["history"]]
        self._restore_rng(saved["rng"])
        self._restore_callbacks(saved["callbacks"])

    # ------------------------------------------------ part by part, each way side by side

    def _check_config(self, saved: dict[str, Any], stacklevel: int) -> None:
        """The saved settings (``dump``'s ``config``) against the resuming run's."""
        saved_config = json.loads(saved["config"])
        current = self.state.config.to_dict()
        if self.state.scheduler is not None and saved_config.get("epochs") != current["epochs"]:
            raise CheckpointError(
                f"{saved['path']} was trained for {saved_config.get('epochs')} epochs with the "
                f"{current['scheduler']!r} learning-rate schedule, which is laid out for that "
                "length; resume it with the same number of epochs"
            )
        changed = sorted(
            k
            for k in current
            if k not in self.RESUMABLE_CHANGES and saved_config.get(k) != current[k]
        )
        if changed:
            warnings.warn(
                f"resuming {saved['path']} with different settings for {changed}; the result "
                "will not match an uninterrupted run",
                stacklevel=stacklevel,
            )

    def _restore_optimizer(self, saved: dict[str, Any] | None) -> None:
        optimizer = self.state.optimizer
        assert optimizer is not None
        if saved is None:
            return
        # The implementation flags belong to this device, not to the saved run's.
        keys = ("fused", "foreach")
        flags = [{k: g[k] for k in keys if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(saved)
        for group, kept in zip(optimizer.param_groups, flags, strict=True):
            group.update(kept)

    def _dump_progress(self) -> dict[str, Any] | None:
        """How far the current epoch got, or ``None`` once it is complete."""
        state = self.state
        if state.epoch_complete:
            return None
        loss_sum, correct = state._epoch_loss_sum, state._epoch_correct
        return {
            "batches": state.batch_in_epoch,
            "loss_sum": loss_sum.detach().cpu() if loss_sum is not None else torch.zeros(()),
            "generator": state._epoch_generator_state,
            "correct": (
                correct.detach().cpu() if correct is not None else torch.zeros((), dtype=torch.long)
            ),
            "seen": state._epoch_seen,
        }

    def _restore_progress(self, progress: dict[str, Any] | None) -> None:
        state = self.state
        if progress is None:  # the saved epoch was complete
            state.batch_in_epoch = state.steps_per_epoch
            return
        state.batch_in_epoch = int(progress["batches"])
        state._epoch_loss_sum = progress["loss_sum"].to(state.device)
        state._epoch_correct = progress["correct"].to(state.device)
        state._epoch_seen = int(progress["seen"])
        state._epoch_generator_state = progress["generator"]

    def _dump_rng(self) -> dict[str, Any]:
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "generator": self.state.generator.get_state(),
        }
        # Reading the CUDA states would start CUDA in a run that never used it.
        cuda_started = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        if torch.cuda.is_available() and cuda_started:
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return rng

    def _restore_rng(self, rng: dict[str, Any]) -> None:
        torch.set_rng_state(rng["torch"])
        self.state.generator.set_state(rng["generator"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _dump_callbacks(self) -> dict[str, Any]:
        states = {}
        for cb in self.state.trainer.callbacks:
            sd = cb.state_dict()
            if sd:
                states[cb.key] = sd
        return states

    def _restore_callbacks(self, saved: dict[str, Any]) -> None:
        for cb in self.state.trainer.callbacks:
            if cb.key in saved:
                cb.load_state_dict(saved[cb.key])

    # ---------------------------------------------------------------- the files alone

    @staticmethod
    def find(path: str | os.PathLike[str]) -> Path:
        """Find the checkpoint folder that ``path`` means.

        ``path`` may be a checkpoint folder itself, a folder of checkpoints (the one
        ``latest`` names, or else the newest complete one), or a run folder with a
        ``checkpoints`` subfolder.

        Raises:
            CheckpointError: If no complete checkpoint is there.
        """
        path = Path(path)
        if _is_complete(path):
            return path
        for folder in (path, path / CHECKPOINTS_DIR):
            if not folder.is_dir():
                continue
            latest = folder / LATEST_NAME
            if latest.is_file():
                candidate = folder / latest.read_text(encoding="utf-8").strip()
                if _is_complete(candidate):
                    return candidate
            for candidate in reversed(_checkpoints(folder)):
                if _is_complete(candidate):
                    return candidate
        raise CheckpointError(
            f"no checkpoint found in {path}: expected a folder with {WEIGHTS_NAME} and "
            f"{TRAINER_STATE_NAME}, or a run folder with {CHECKPOINTS_DIR}/ (train with "
            "--out DIR to write them)"
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Read a checkpoint's weights and trainer state (no arbitrary objects are unpickled).

        Returns:
            ``(model_state_dict, trainer_state)``; ``trainer_state["path"]`` is the folder.

        Raises:
            CheckpointError: If the files cannot be read or are of another format version.
        """
        folder = cls.find(path)
        try:
            weights = load_file(str(folder / WEIGHTS_NAME))
            trainer_state = torch.load(
                folder / TRAINER_STATE_NAME, map_location="cpu", weights_only=True
            )
        except Exception as exc:
            raise CheckpointError(f"cannot read checkpoint {folder}: {exc}") from exc
        if trainer_state.get("format_version") != cls.FORMAT_VERSION:
            raise CheckpointError(
                f"{folder}: checkpoint format {trainer_state.get('format_version')!r} is not "
                f"supported (expected {cls.FORMAT_VERSION})"
            )
        trainer_state["path"] = str(folder)
        return weights, trainer_state

    @staticmethod
    def prune(
        directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
    ) -> None:
        """Delete all but the ``keep`` newest checkpoints in ``directory`` (``0`` keeps all).

        With ``newest`` (the checkpoint just written), only checkpoints that come before it
        are candidates: anything sorting after it belongs to another run and is left alone.
        """
        found = _checkpoints(Path(directory))
        if newest is not None:
            names = [p.name for p in found]
            if Path(newest).name in names:
                found = found[: names.index(Path(newest).name) + 1]
        for old in found[:-keep] if keep else []:
            shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(directory: str | os.PathLike[str], state: TrainState) -> Path:
    """Write a checkpoint of ``state`` into ``directory`` (:meth:`CheckpointConnector.save`)."""
    return CheckpointConnector(state).save(directory)


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder that ``path`` means (:meth:`CheckpointConnector.find`)."""
    return CheckpointConnector.find(path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's ``(weights, trainer_state)`` (:meth:`CheckpointConnector.load`)."""
    return CheckpointConnector.load(path)


def prune_checkpoints(
    directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
) -> None:
    """Delete all but the ``keep`` newest checkpoints (:meth:`CheckpointConnector.prune`)."""
    CheckpointConnector.prune(directory, keep, newest)
