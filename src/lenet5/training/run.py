"""The run folder of ``lenet5 train``: the one place that knows its layout.

A run folder holds::

    train_config.json   the dataset and the TrainConfig of the run (written before training)
    metrics.csv         one row per epoch (written by CSVLogger)
    checkpoints/        resumable checkpoints (written by the Checkpoint callback)
    model.safetensors   the final model, with config.json and the model card README.md,
                        written by LeNet5.save_pretrained
    results.json        the dataset, epochs run, test accuracy and loss, and the history
    .lock               held (an exclusive lock) by the one process that writes the folder
    .lock.owner         who holds it: process id, host, start time and command (JSON)

:class:`RunFolder` names these files, reads and writes the run's own records atomically, finds
the run folder that a ``--resume`` path means, refuses to start a new run where another
one left its checkpoints, and holds the folder's lock (:meth:`RunFolder.lock`). Nothing here
imports torch, so the command line can settle all of this before it loads anything heavy.

``train_config.json`` holds the settings a run started with, and ``"overrides"``: the
settings changed when it was resumed, in order, each ``{"setting", "before", "after",
"step"}`` with the global step from which the new value took effect.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
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
    WriteError,
    atomic_write_text,
    dumps_json,
    read_json_file,
    remove_leftovers,
)

if TYPE_CHECKING:
    from ..model import LeNet5
    from .config import TrainConfig

__all__ = [
    "LOCK_NAME",
    "OWNER_NAME",
    "RunFolder",
    "RunFolderError",
    "RunFolderLocked",
    "RunSettings",
]

# The model card's YAML header names the library that wrote it; only such a card is ours.
_OUR_CARD = "library_name: lenet5"
#: The lock file of a run folder, and the record of who holds the lock, beside it.
LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"
# The keys of one override in train_config.json.
_OVERRIDE_KEYS = ("setting", "before", "after", "step")
_OVERRIDES = 'a list of {"setting", "before", "after", "step"} objects'
# The largest record read from a run folder (lenet5 writes a few kB).
_MAX_RECORD_BYTES = 16 * 2**20


class RunFolderError(ValueError):
    """A run folder cannot be used as asked: it holds another run, or a record is unreadable."""


class RunFolderLocked(RunFolderError):
    """Another process holds the run folder's lock (it is training there).

    Attributes:
        owner: What the holder recorded about itself (``pid``, ``host``, ``started``,
            ``command``), empty if it could not be read.
    """

    def __init__(self, message: str, owner: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.owner = dict(owner)


@dataclass(frozen=True)
class RunSettings:
    """What a run folder recorded about its run before training started.

    Attributes:
        dataset: The dataset trained on (``None`` if the folder did not record it).
        config: The :class:`~lenet5.training.config.TrainConfig` fields the run started
            with, as saved by :meth:`~lenet5.training.config.TrainConfig.to_dict` (empty if
            none were recorded).
        overrides: The settings changed on resume, in order: each a dict with ``setting``,
            ``before``, ``after`` and ``step`` (the global step from which ``after`` held).
    """

    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = ()

    def current(self) -> dict[str, Any]:
        """The settings in effect at the end of the recorded run: ``config`` with every
        override's ``after`` applied, in order."""
        settings = dict(self.config)
        for override in self.overrides:
            settings[override["setting"]] = override["after"]
        return settings


@dataclass(frozen=True, init=False)
class RunFolder:
    """A training run's folder (see the module docstring for its layout).

    Args:
        path: The folder; it need not exist yet.
    """

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

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

    @property
    def lock_file(self) -> Path:
        """The lock that the one process writing the folder holds (:meth:`lock`)."""
        return self.path / LOCK_NAME

    @property
    def owner_file(self) -> Path:
        """Who holds the lock (process id, host, start time and command, as JSON)."""
        return self.path / OWNER_NAME

    # ------------------------------------------------------------ finding one

    @classmethod
    def default(cls, dataset: str, root: str | os.PathLike[str] = "runs") -> RunFolder:
        """A new folder named after the dataset and the time: ``runs/mnist-20250101-120000``
        (``...-120000-2`` and so on for runs started within the same second)."""
        base = Path(root) / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        taken = (base.with_name(f"{base.name}-{n}") for n in itertools.count(2))
        return cls(next(p for p in itertools.chain([base], taken) if not p.exists()))

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

    # ------------------------------------------------------------------ the lock

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's exclusive lock for the block: one writer per run folder.

        Creates the folder, takes the lock at once or refuses, records who holds it in
        :attr:`owner_file`, and removes the temporary files that a crashed write left there.
        The lock is the operating system's (:class:`filelock.FileLock`), released however
        the process ends: a lock left by a killed process never blocks.

        Raises:
            RunFolderLocked: If another process holds it, naming the folder and that
                process.
            lenet5.WriteError: If the folder or the owner record cannot be written.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(self.path, exc) from exc
        held = self._take_lock()
        try:
            atomic_write_text(self.owner_file, dumps_json(_owner_record()) + "\n")
            remove_leftovers(self.path)
            yield
        finally:
            self.owner_file.unlink(missing_ok=True)
            held.release()

    def check_unlocked(self) -> None:
        """Refuse at once a folder that another process holds (creating nothing).

        Raises:
            RunFolderLocked: If another process holds the lock.
        """
        if self.lock_file.is_file():
            self._take_lock().release()

    def _take_lock(self) -> Any:
        """The folder's lock (a :class:`filelock.FileLock`), taken at once or refused."""
        from filelock import FileLock, Timeout

        held = FileLock(str(self.lock_file), timeout=0)
        try:
            held.acquire()
        except Timeout:  # a TimeoutError, so before the other OS errors
            owner = self.lock_owner(wait=1.0)
            who = "another process"
            if owner:
                who = f"process {owner.get('pid')} on {owner.get('host')}"
                who += f", since {owner.get('started')}"
            raise RunFolderLocked(f"{self.path} is in use by {who}", owner) from None
        except OSError as exc:
            raise _write_error(self.lock_file, exc) from exc
        return held

    def lock_owner(self, wait: float = 0.0) -> dict[str, Any]:
        """What the lock's holder recorded about itself (empty if nothing is readable).

        Args:
            wait: Seconds to wait for the record of a live process: one that has just
                taken the lock writes it, over the record of one that died.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                data = read_json_file(self.owner_file, max_bytes=_MAX_RECORD_BYTES)
            except (OSError, ValueError):
                data = {}
            data = data if isinstance(data, dict) else {}
            if (data and _alive(data)) or time.monotonic() >= deadline:
                return data
            time.sleep(0.02)

    # ---------------------------------------------------------------- records

    def read_settings(self) -> RunSettings:
        """The settings the run recorded (empty if it recorded none).

        Raises:
            RunFolderError: If the record is unreadable, not a JSON object, or its
                overrides are malformed.
        """
        if not self.config_file.is_file():
            return RunSettings()
        data = _read_json(self.config_file, "the run's settings")
        dataset = data.pop("dataset", None)
        overrides = data.pop("overrides", [])
        keys = set(_OVERRIDE_KEYS)
        if not isinstance(overrides, list) or not all(
            isinstance(o, dict)
            and keys <= o.keys()
            and isinstance(o["setting"], str)
            and isinstance(o["step"], int)
            for o in overrides
        ):
            raise RunFolderError(f"{self.config_file}: malformed overrides (not {_OVERRIDES})")
        if dataset is not None and not isinstance(dataset, str):
            raise RunFolderError(f"{self.config_file}: dataset must be a name, got {dataset!r}")
        return RunSettings(dataset=dataset, config=data, overrides=tuple(overrides))

    def write_settings(
        self,
        config: TrainConfig | Mapping[str, Any],
        dataset: str,
        overrides: Sequence[Mapping[str, Any]] = (),
    ) -> Path:
        """Record the run's dataset, the settings it started with (a ``TrainConfig`` or its
        ``to_dict()``) and every resume's overrides so far, in order (``Override.to_dict()``
        of :class:`~lenet5.training.checkpoint.Override`), atomically."""
        settings = dict(config) if isinstance(config, Mapping) else config.to_dict()
        record = {
            "dataset": dataset,
            **settings,
            "overrides": [{k: o[k] for k in _OVERRIDE_KEYS} for o in overrides],
        }
        return atomic_write_text(self.config_file, dumps_json(record, indent=2) + "\n")

    def read_results(self) -> dict[str, Any]:
        """The results of a finished run.

        Raises:
            RunFolderError: If the run has not finished (no results) or they are unreadable.
        """
        if not self.results_file.is_file():
            raise RunFolderError(f"{self.path} holds no results: the run has not finished")
        return _read_json(self.results_file, "the run's results")

    def write_results(self, results: Mapping[str, Any]) -> Path:
        """Record the run's results (atomically), as strict JSON: a non-finite number (the
        loss of a diverged run) is written as ``null``, with ``"non_finite"`` saying which
        and what it was (see :func:`lenet5._io.dumps_json`)."""
        return atomic_write_text(self.results_file, dumps_json(results, indent=2) + "\n")

    def save_model(self, model: LeNet5, metadata: Mapping[str, str]) -> Path:
        """Save the final model with ``model.save_pretrained``, with a fresh model card.

        ``save_pretrained`` writes the card only where there is none, which would leave a
        resumed run with the card of its first part; so a card that lenet5 wrote is removed
        first. A README of the user's own (a run started in a folder that had one) is kept.
        """
        if _is_our_card(self.card_file):
            self.card_file.unlink()
        return model.save_pretrained(self.path, metadata=dict(metadata))


def _write_error(path: Path, exc: OSError) -> WriteError:
    """``exc`` as a :class:`~lenet5.WriteError` naming ``path``."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


def _alive(owner: Mapping[str, Any]) -> bool:
    """Whether the process of an owner record may be running (on another host: unknown)."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process
    return True


def _owner_record() -> dict[str, Any]:
    """Who takes a run folder's lock: this process."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(sys.argv),
    }


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object of the run folder, bounded in size and depth (a hostile or damaged
    file is a :class:`RunFolderError` naming it, never a ``RecursionError``)."""
    try:
        data = read_json_file(path, max_bytes=_MAX_RECORD_BYTES)
    except OSError as exc:
        raise RunFolderError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
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
