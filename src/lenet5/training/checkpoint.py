"""The checkpoint format, both directions: save, find, load, restore and prune; and resuming.

A checkpoint is a folder ``epoch-NNNN`` (``epoch-NNNN-batch-BBBBBB`` when a run stopped
mid-epoch) with the weights as ``model.safetensors`` and the rest of the training state as
``trainer.pt``, which is read back with ``torch.load(weights_only=True)`` (tensors and plain
containers only, no arbitrary objects) and checked key by key. The folder is written under a
temporary name and renamed into place; the text file ``latest`` beside it names the newest
complete checkpoint and is replaced atomically too. A damaged newest checkpoint in a folder
of checkpoints is passed over for the newest intact one, with a warning.

:class:`CheckpointConnector` is the one place that knows what goes into ``trainer.pt`` and
how it comes back, each part's saving beside its restoring (as Lightning's checkpoint
connector does). :func:`resume_overrides` decides which changed settings a resumed run
applies and which it refuses. The other module-level functions are shortcuts. (The errors
and the resume rules are defined in private submodules only to keep each file small;
import them from here.)
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from safetensors.torch import save as safetensors_bytes

from .._io import LATEST_NAME, TRAINER_STATE_NAME, WEIGHTS_NAME, atomic_folder, atomic_write_text
from ._checkpoint_files import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoints,
    find_checkpoints,
    select,
    write_synced,
)
from ._modules import strip_wrapper_prefixes, unwrap
from ._resume import OPTIMIZER_SETTINGS, Override, ResumeError, resume_overrides

if TYPE_CHECKING:
    from .state import TrainState

__all__ = [
    "CheckpointConnector",
    "CheckpointError",
    "Override",
    "ResumeError",
    "find_checkpoint",
    "find_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "resume_overrides",
    "save_checkpoint",
]


class CheckpointConnector:
    """Saves a fit's :class:`~lenet5.training.state.TrainState` as a checkpoint and restores it.

    What a checkpoint holds: the weights, the optimizer (whose implementation flags belong to
    the device, so a restore keeps the current ones), the scheduler, the EMA, the epoch and
    step, the progress within an unfinished epoch, the random states, the history, the
    number of processes, the overrides of earlier resumes and the state of every callback
    that has one. Restoring a checkpoint and training on with the same settings ends the run
    as if it had never stopped.

    Args:
        state: The fit being saved, or being filled in by a restore (its model, optimizer,
            scheduler and EMA already built, ``steps_per_epoch`` known).
    """

    #: The ``format_version`` written into ``trainer.pt``, and the only one read back.
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION

    def __init__(self, state: TrainState) -> None:
        self.state = state

    # ----------------------------------------------------------- the whole checkpoint

    def save(self, directory: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Write a checkpoint into ``directory/epoch-NNNN`` and point ``latest`` at it.

        Args:
            directory: The folder of checkpoints.
            name: Write it as ``directory/name`` instead (``best``, say), leaving ``latest``
                alone; a checkpoint of that name is replaced whole.

        Returns:
            The checkpoint folder.

        Raises:
            lenet5._io.WriteError: If it cannot be written (``cannot write PATH: CAUSE``);
                the previous checkpoints stay as they were.
        """
        state, directory = self.state, Path(directory)
        periodic = name is None
        if name is None:
            name = f"epoch-{state.epoch:04d}"
            if not state.epoch_complete:
                name += f"-batch-{state.batch_in_epoch:06d}"
        # Serialised first, so that a failure to write names the path, not torch's stream.
        model = unwrap(state.model)  # never a wrapper's prefixed names
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weight_bytes = safetensors_bytes(weights, metadata={"format": "pt"})
        buffer = io.BytesIO()
        torch.save(self.dump(), buffer)
        # A rerun of the same epoch replaces the old checkpoint whole.
        with atomic_folder(directory / name) as tmp:
            write_synced(tmp / WEIGHTS_NAME, weight_bytes)
            write_synced(tmp / TRAINER_STATE_NAME, buffer.getvalue())
        if periodic:
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
            "optimizer": state._optimizer.state_dict() if state._optimizer is not None else None,
            "scaler": state.scaler.state_dict() if state.scaler is not None else None,
            "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
            "ema": state.ema.state_dict() if state.ema is not None else None,
            "history": [dict(h) for h in state.history],
            "epoch_progress": self._dump_progress(),
            "callbacks": self._dump_callbacks(),
            "rng": self._dump_rng(),
            "world_size": state.world_size,
            "train_size": state.train_size,
            "overrides": [o.to_dict() for o in state.overrides],
        }

    def restore(self, path: str | os.PathLike[str], *, stacklevel: int = 2) -> list[Override]:
        """Load the checkpoint that ``path`` means (see :meth:`find`) into the state.

        Settings that differ from the checkpoint's are applied from the resumed step on or
        refused (:func:`resume_overrides`); ``state.overrides`` gets the earlier resumes'
        overrides followed by this one's.

        Args:
            path: A checkpoint folder, a folder of checkpoints or a run folder.
            stacklevel: As for :func:`warnings.warn`, counted from this method: where the
                warning about a damaged checkpoint passed over points (2, the caller).

        Returns:
            This resume's overrides.

        Raises:
            ResumeError: If a changed setting cannot take effect, or the run had another
                number of processes.
            CheckpointError: If no intact checkpoint is there, or it does not fit the model.
        """
        weights, saved = self.load(path, stacklevel=stacklevel + 1)
        try:
            overrides = self._check_resume(saved)
        except ResumeError as exc:
            raise ResumeError(f"{saved['path']}: {exc}", exc.settings) from None
        try:
            self._apply(weights, saved, overrides)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"checkpoint {saved['path']} does not fit this run: {reason}"
            ) from exc
        return overrides

    def _check_resume(self, saved: dict[str, Any]) -> list[Override]:
        """This resume's overrides; refuses what cannot take effect, before anything changes."""
        state = self.state
        overrides = resume_overrides(
            json.loads(saved["config"]),
            state.config,
            epochs_done=saved["epoch"],
            global_step=saved["global_step"],
        )
        processes = saved.get("world_size", state.world_size)
        if processes != state.world_size:
            raise ResumeError(
                f"cannot resume on {state.world_size} process(es) (trained on {processes}: "
                "each step's global batch is batch_size times the processes); resume on "
                f"{processes} (torchrun --nproc_per_node={processes}), or start a new run",
                ["strategy"],
            )
        examples = saved.get("train_size", state.train_size)
        if examples != state.train_size:
            raise ResumeError(
                f"cannot resume on {state.train_size} training examples (trained on "
                f"{examples}: the batches of every epoch depend on them); resume with the "
                "same training data, or start a new run",
                ["data"],
            )
        return overrides

    def _apply(
        self, weights: dict[str, torch.Tensor], saved: dict[str, Any], overrides: list[Override]
    ) -> None:
        """Put the checkpoint into the state, then the overrides over it."""
        state = self.state
        self._restore_weights(weights)
        self._restore_optimizer(saved["optimizer"], overrides)
        if state.scheduler is not None and saved["scheduler"] is not None:
            state.scheduler.load_state_dict(saved["scheduler"])
        self._restore_ema(saved["ema"])
        if state.scaler is not None and saved.get("scaler") is not None:
            state.scaler.load_state_dict(saved["scaler"])
        state.epoch, state.global_step = saved["epoch"], saved["global_step"]
        self._restore_progress(saved["epoch_progress"])
        state.history = [dict(h) for h in saved["history"]]
        self._restore_rng(saved["rng"])
        self._restore_callbacks(saved["callbacks"])
        earlier = [
            Override(o["setting"], o.get("before"), o.get("after"), o["step"])
            for o in saved.get("overrides", [])
        ]
        state.overrides = earlier + overrides

    # ------------------------------------------------ part by part, each way side by side

    def _restore_weights(self, weights: dict[str, torch.Tensor]) -> None:
        model = unwrap(self.state.model)
        weights = strip_wrapper_prefixes(weights)  # written by a compiled or DDP model
        for name, tensor in model.state_dict().items():
            if name in weights and weights[name].dtype != tensor.dtype:
                raise CheckpointError(
                    f"{name} is {weights[name].dtype} in the checkpoint, {tensor.dtype} in "
                    "the model"
                )
        model.load_state_dict(weights)

    def _restore_optimizer(self, saved: dict[str, Any] | None, overrides: list[Override]) -> None:
        optimizer = self.state.optimizer
        if saved is None:
            return
        # The implementation flags belong to this device, not to the saved run's.
        keys = ("fused", "foreach")
        flags = [{k: g[k] for k in keys if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(saved)
        for group, kept in zip(optimizer.param_groups, flags, strict=True):
            group.update(kept)
            # The saved groups bring their own rates back: the overrides go in after them.
            for o in overrides:
                if o.setting in OPTIMIZER_SETTINGS:
                    group[o.setting] = o.after
                if o.setting == "momentum" and "nesterov" in group:
                    group["nesterov"] = o.after > 0

    def _restore_ema(self, saved: dict[str, Any] | None) -> None:
        ema = self.state.ema
        if ema is None:
            return  # averaging is off from now on: the saved average is not used
        if saved is not None:
            ema.load_state_dict(saved)
        else:  # averaging starts now: from the restored weights, not the initial ones
            ema.module.load_state_dict(self.state.model.state_dict())

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
            # Where a given DataLoader's order was drawn (see lenet5.training._feed).
            "torch_rng": state._epoch_torch_rng,
        }

    def _restore_progress(self, progress: dict[str, Any] | None) -> None:
        state = self.state
        if progress is None:  # the saved epoch was complete
            state.batch_in_epoch = state.steps_per_epoch
            state._exhausted = True
            return
        state._exhausted = False
        if state.steps_per_epoch and progress["batches"] >= state.steps_per_epoch:
            raise ValueError(
                f"it stopped after batch {progress['batches']} of an epoch of "
                f"{state.steps_per_epoch} batches"
            )
        state.batch_in_epoch = progress["batches"]
        state._epoch_loss_sum = progress["loss_sum"].reshape(()).to(state.device)
        state._epoch_correct = progress["correct"].reshape(()).to(state.device, torch.long)
        state._epoch_seen = progress["seen"]
        state._epoch_generator_state = progress["generator"]
        state._epoch_torch_rng = progress.get("torch_rng")

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
    def find(path: str | os.PathLike[str], *, stacklevel: int = 2) -> Path:
        """Find the checkpoint folder that ``path`` means, and check that it is intact.

        ``path`` may be a checkpoint folder itself (damage is then an error), a folder of
        checkpoints (the one ``latest`` names, or else the newest; a damaged one is passed
        over for the newest intact one before it, with a warning naming both), or a run
        folder with a ``checkpoints`` subfolder.

        Raises:
            CheckpointError: If no intact checkpoint is there, in one line naming the file.
        """
        return select(Path(path), stacklevel + 1)[0]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, stacklevel: int = 2
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Read a checkpoint's weights and trainer state (no arbitrary objects are unpickled,
        and the trainer state's structure is checked); which checkpoint, as :meth:`find`.

        Returns:
            ``(model_state_dict, trainer_state)``; ``trainer_state["path"]`` is the folder.

        Raises:
            CheckpointError: If the files are missing, damaged or of another format version.
        """
        _, weights, trainer_state = select(Path(path), stacklevel + 1)
        return weights, trainer_state

    @staticmethod
    def prune(
        directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
    ) -> None:
        """Delete all but the ``keep`` newest checkpoints in ``directory`` (``0`` keeps all).

        With ``newest`` (the checkpoint just written), only checkpoints that come before it
        are candidates: anything sorting after it belongs to another run and is left alone.
        """
        found = checkpoints(Path(directory))
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
    return CheckpointConnector.find(path, stacklevel=3)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's ``(weights, trainer_state)`` (:meth:`CheckpointConnector.load`)."""
    return CheckpointConnector.load(path, stacklevel=3)


def prune_checkpoints(
    directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
) -> None:
    """Delete all but the ``keep`` newest checkpoints (:meth:`CheckpointConnector.prune`)."""
    CheckpointConnector.prune(directory, keep, newest)
