"""The run folder of ``lenet5 train``: the one place that knows its layout.

A run folder holds::

    train_config.json   the dataset and the TrainConfig of the run (written before training)
    metrics.csv         one row per epoch (written by CSVLogger)
    checkpoints/        resumable checkpoints (written by the Checkpoint callback)
    model.safetensors   the final model, with config.json and the model card README.md,
                        written by LeNet5.save_pretrained
    results.json        the dataset, epochs run, test accuracy and loss, and the history

:class:`RunFolder` names these files, reads and writes the run's own records atomically, finds
the run folder that a ``--resume`` path means, and refuses to start a new run where another
one left its checkpoints. Nothing here imports torch, so the command line can settle all of
this before it loads anything heavy.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import (
    CARD_NAME,
    CHECKPOINTS_DIR,
    METRICS_NAME,
    RESULTS_NAME,
    TRAIN_CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
)

if TYPE_CHECKING:
    from ..model import LeNet5
    from .config import TrainConfig

__all__ = ["RunFolder", "RunFolderError", "RunSettings", "ensure_writable"]

# The model card's YAML header names the library that wrote it; only such a card is ours.
_OUR_CARD = "library_name: lenet5"


class RunFolderError(ValueError):
    """A run folder cannot be used as asked: it holds another run, or a record is unreadable."""


@dataclass(frozen=True)
class RunSettings:
    """What a run folder recorded about its run before training started.

    Attributes:
        dataset: The dataset trained on (``None`` if the folder did not record it).
        config: The :class:`~lenet5.training.config.TrainConfig` fields, as saved by
            :meth:`~lenet5.training.config.TrainConfig.to_dict` (empty if none were recorded).
    """

    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


class RunFolder:
    """A training run's folder (see the module docstring for its layout).

    Args:
        path: The folder; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------------ layout

    @property
    def config_file(self) -> Path:
        """The run's settings and dataset (``train_config.json``)."""
        return self.path / TRAIN_CONFIG_NAME

    @property
    def metrics_file(self) -> Path:
        """The per-epoch metrics (``metrics.csv``), for :class:`~lenet5.CSVLogger`."""
        return self.path / METRICS_NAME

    @property
    def checkpoints_dir(self) -> Path:
        """The folder of resumable checkpoints, for :class:`~lenet5.Checkpoint`."""
        return self.path / CHECKPOINTS_DIR

    @property
    def results_file(self) -> Path:
        """The final results (``results.json``)."""
        return self.path / RESULTS_NAME

    @property
    def weights_file(self) -> Path:
        """The final model's weights, written by :meth:`save_model`."""
        return self.path / WEIGHTS_NAME

    @property
    def card_file(self) -> Path:
        """The final model's card, written by :meth:`save_model`."""
        return self.path / CARD_NAME

    # ------------------------------------------------------------ finding one

    @classmethod
    def default(cls, dataset: str, root: str | os.PathLike[str] = "runs") -> RunFolder:
        """A new folder named after the dataset and the time: ``runs/mnist-20250101-120000``."""
        return cls(Path(root) / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")

    @classmethod
    def find(cls, path: str | os.PathLike[str]) -> RunFolder:
        """The run folder that a resume path means.

        ``path`` may be the run folder, its ``checkpoints/`` folder, or one checkpoint in
        it: the folder that recorded the run's settings wins. A folder of checkpoints
        written by the Python API (no settings recorded anywhere) is its own run folder.
        """
        path = Path(path)
        for candidate in (path, path.parent, path.parent.parent):
            inside = candidate == path or path.is_relative_to(candidate / CHECKPOINTS_DIR)
            if inside and (candidate / TRAIN_CONFIG_NAME).is_file():
                return cls(candidate)
        return cls(path)

    def has_checkpoints(self) -> bool:
        """Whether a run already left checkpoints here."""
        folder = self.checkpoints_dir
        return folder.is_dir() and any(folder.iterdir())

    def check_unused(self) -> None:
        """Refuse a folder that holds another run's checkpoints (mixing two runs in one
        folder would make its metrics and checkpoints lie).

        Raises:
            RunFolderError: If checkpoints are there.
        """
        if self.has_checkpoints():
            raise RunFolderError(f"{self.path} already holds a run's checkpoints")

    # ---------------------------------------------------------------- records

    def read_settings(self) -> RunSettings:
        """The settings the run recorded (empty if it recorded none).

        Raises:
            RunFolderError: If the record is unreadable or not a JSON object.
        """
        if not self.config_file.is_file():
            return RunSettings()
        data = _read_json(self.config_file, "the run's settings")
        dataset = data.pop("dataset", None)
        return RunSettings(dataset=None if dataset is None else str(dataset), config=data)

    def write_settings(self, config: TrainConfig, dataset: str) -> Path:
        """Record the run's dataset and settings (atomically), before training starts."""
        record = {"dataset": dataset, **config.to_dict()}
        return atomic_write_text(self.config_file, json.dumps(record, indent=2) + "\n")

    def read_results(self) -> dict[str, Any]:
        """The results of a finished run.

        Raises:
            RunFolderError: If the run has not finished (no results) or they are unreadable.
        """
        if not self.results_file.is_file():
            raise RunFolderError(f"{self.path} holds no results: the run has not finished")
        return _read_json(self.results_file, "the run's results")

    def write_results(self, results: Mapping[str, Any]) -> Path:
        """Record the run's results (atomically)."""
        return atomic_write_text(self.results_file, json.dumps(results, indent=2) + "\n")

    def save_model(self, model: LeNet5, metadata: Mapping[str, str]) -> Path:
        """Save the final model with ``model.save_pretrained``, with a fresh model card.

        ``save_pretrained`` writes the card only where there is none, which would leave a
        resumed run with the card of its first part; so a card that lenet5 wrote is removed
        first. A README of the user's own (a run started in a folder that had one) is kept.
        """
        if _is_our_card(self.card_file):
            self.card_file.unlink()
        return model.save_pretrained(self.path, metadata=dict(metadata))


def ensure_writable(folder: str | os.PathLike[str]) -> None:
    """Create ``folder`` and check that files can be written in it (before hours of work
    whose results would have nowhere to go).

    Raises:
        OSError: If it cannot be created or written to, naming the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".lenet5-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"output folder {folder} is not writable ({exc.strerror})") from None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def _is_our_card(path: Path) -> bool:
    """Whether ``path`` is a model card written by lenet5 (its YAML header says so)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.startswith("---"):
        return False
    header = text[3:].split("\n---", 1)[0]
    return any(line.strip() == _OUR_CARD for line in header.splitlines())
