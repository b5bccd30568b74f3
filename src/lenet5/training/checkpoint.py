"""Atomic, pickle-free-where-it-matters checkpoints.

A checkpoint is a folder ``epoch-NNNN`` with the weights as ``model.safetensors`` and the
rest of the training state as ``trainer.pt``, which is read back with
``torch.load(weights_only=True)`` (tensors and plain containers only, no arbitrary objects).
The folder is written under a temporary name and renamed into place; the text file
``latest`` beside it names the newest complete checkpoint and is replaced atomically too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from .._io import atomic_write_text, make_readable

if TYPE_CHECKING:
    from .state import TrainState

__all__ = [
    "CheckpointError",
    "find_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
]

_NAME = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d+))?$")


def _sort_key(match: re.Match[str]) -> tuple[int, float]:
    """Order checkpoints by progress: a mid-epoch one comes before its complete epoch."""
    batch = match.group(2)
    return int(match.group(1)), float(batch) if batch is not None else float("inf")


_FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match the run resuming from it."""


def save_checkpoint(directory: str | os.PathLike[str], state: TrainState) -> Path:
    """Write a checkpoint of ``state`` into ``directory/epoch-NNNN`` and point ``latest`` at it.

    Returns:
        The checkpoint folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mid_epoch = not state.epoch_complete
    name = f"epoch-{state.epoch:04d}"
    if mid_epoch:
        name += f"-batch-{state.batch_in_epoch:06d}"
    final = directory / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=directory))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        torch.save(_trainer_state(state), tmp / "trainer.pt")
        make_readable(tmp, directory=True)
        if final.exists():  # a rerun of the same epoch replaces the old checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(directory / "latest", final.name + "\n")
    return final


def _trainer_state(state: TrainState) -> dict[str, Any]:
    callbacks: dict[str, Any] = {}
    for cb in state.trainer.callbacks:
        sd = cb.state_dict()
        if sd:
            callbacks[cb.key] = sd
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": state.generator.get_state()}
    cuda_started = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    if torch.cuda.is_available() and cuda_started:
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format_version": _FORMAT_VERSION,
        "epoch": state.epoch,
        "global_step": state.global_step,
        "config": json.dumps(state.config.to_dict()),
        "optimizer": state.optimizer.state_dict() if state.optimizer is not None else None,
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "history": [dict(h) for h in state.history],
        "epoch_progress": (
            {
                "batches": state.batch_in_epoch,
                "loss_sum": state._epoch_loss_sum.detach().cpu()
                if state._epoch_loss_sum is not None
                else torch.zeros(()),
                "generator": state._epoch_generator_state,
                "correct": state._epoch_correct.detach().cpu()
                if state._epoch_correct is not None
                else torch.zeros((), dtype=torch.long),
                "seen": state._epoch_seen,
            }
            if not state.epoch_complete
            else None
        ),
        "callbacks": callbacks,
        "rng": rng,
    }


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Find the checkpoint folder that ``path`` means.

    ``path`` may be a checkpoint folder itself, a folder of checkpoints (the one ``latest``
    names, or else the highest epoch), or a run folder with a ``checkpoints`` subfolder.

    Raises:
        CheckpointError: If no complete checkpoint is there.
    """
    path = Path(path)
    if (path / "trainer.pt").is_file() and (path / "model.safetensors").is_file():
        return path
    for folder in (path, path / "checkpoints"):
        if not folder.is_dir():
            continue
        latest = folder / "latest"
        if latest.is_file():
            candidate = folder / latest.read_text(encoding="utf-8").strip()
            if (candidate / "trainer.pt").is_file():
                return candidate
        epochs = sorted((_sort_key(m), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
        for _, candidate in reversed(epochs):
            if (candidate / "trainer.pt").is_file() and (candidate / "model.safetensors").is_file():
                return candidate
    raise CheckpointError(
        f"no checkpoint found in {path}: expected a folder with model.safetensors and "
        "trainer.pt, or a run folder with checkpoints/ (train with --out DIR to write them)"
    )


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint's weights and trainer state (no arbitrary objects are unpickled).

    Returns:
        ``(model_state_dict, trainer_state)``.

    Raises:
        CheckpointError: If the files cannot be read.
    """
    folder = find_checkpoint(path)
    try:
        weights = load_file(str(folder / "model.safetensors"))
        trainer_state = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {folder}: {exc}") from exc
    if trainer_state.get("format_version") != _FORMAT_VERSION:
        raise CheckpointError(
            f"{folder}: checkpoint format {trainer_state.get('format_version')!r} is not "
            f"supported (expected {_FORMAT_VERSION})"
        )
    trainer_state["path"] = str(folder)
    return weights, trainer_state


def prune_checkpoints(
    directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
) -> None:
    """Delete all but the ``keep`` newest checkpoints in ``directory``.

    With ``newest`` (the checkpoint just written), only checkpoints that come before it are
    candidates: anything sorting after it belongs to another run and is left alone.
    """
    directory = Path(directory)
    found = sorted((_sort_key(m), p) for p in directory.iterdir() if (m := _NAME.match(p.name)))
    if newest is not None:
        name = Path(newest).name
        names = [p.name for _, p in found]
        if name in names:
            found = found[: names.index(name) + 1]
    for _, old in found[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
