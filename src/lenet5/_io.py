"""Atomic file writing and the file names of the formats lenet5 writes.

Everything lenet5 writes goes through this module: a file is written under a temporary name
beside its destination and renamed into place, so a reader (or a crash) sees the old file or
the new one, never half of one. Temporary files made by :mod:`tempfile` are created with mode
0600; :func:`make_readable` gives the result the permissions the umask asks for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CARD_NAME",
    "CHECKPOINTS_DIR",
    "CONFIG_NAME",
    "LATEST_NAME",
    "METRICS_NAME",
    "RESULTS_NAME",
    "TRAINER_STATE_NAME",
    "TRAIN_CONFIG_NAME",
    "WEIGHTS_NAME",
    "WriteError",
    "atomic_file",
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "make_readable",
    "remove_leftovers",
]

#: The weights of a saved model or a checkpoint (the Hugging Face layout).
WEIGHTS_NAME = "model.safetensors"
#: The model's constructor arguments, beside the weights.
CONFIG_NAME = "config.json"
#: The model card of a saved model folder.
CARD_NAME = "README.md"
#: A checkpoint's optimizer, scheduler, random states and callback states.
TRAINER_STATE_NAME = "trainer.pt"
#: Names the newest complete checkpoint in a folder of checkpoints.
LATEST_NAME = "latest"
#: A run folder's settings, its metrics, its results and its checkpoints.
TRAIN_CONFIG_NAME = "train_config.json"
METRICS_NAME = "metrics.csv"
RESULTS_NAME = "results.json"
CHECKPOINTS_DIR = "checkpoints"

#: The prefix and suffix of every temporary name, so that leftovers can be recognised.
TMP_PREFIX = "."
TMP_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file or folder could not be written (disk full, no permission...); names the path.

    ``errno`` is the operating system's; the message is ``"cannot write PATH: CAUSE"``.
    """

    def __str__(self) -> str:
        return str(self.strerror)


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """Re-raise an OS error as a :class:`WriteError` that names ``path`` and the cause."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        cause = exc.strerror or str(exc) or type(exc).__name__
        raise WriteError(exc.errno, f"cannot write {path}: {cause}") from exc


def make_readable(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a file made by :mod:`tempfile` (mode 0600) the usual permissions under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The caller writes the file (with any library) to the yielded path. If the block raises,
    the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX, dir=path.parent
        )
        os.close(fd)
    try:
        with _named(path):
            yield Path(tmp)
            make_readable(tmp)
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    A folder that already exists at ``path`` is replaced whole. If the block raises, the
    temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        )
    try:
        with _named(path):
            yield tmp
            make_readable(tmp, directory=True)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files and folders that a crashed write left in ``folder``.

    Only call this while no other process writes there (a run folder's lock is held).

    Returns:
        What was removed.
    """
    removed = []
    for entry in Path(folder).glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
