"""Atomic file writing, strict JSON, and the file names of the formats lenet5 writes.

Everything lenet5 writes goes through this module: a file is written under a temporary name
beside its destination and renamed into place, so a reader (or a crash) sees the old file or
the new one, never half of one. Temporary files made by :mod:`tempfile` are created with mode
0600; :func:`make_readable` gives the result the permissions the umask asks for. Each
temporary name carries the host and process that made it, so that a later writer can remove
what a killed one left (:func:`remove_stale_leftovers`) without touching a live writer's.

Every JSON lenet5 writes is strict (:func:`dumps_json`: no ``NaN`` or ``Infinity``, which
``jq``, browsers and most parsers refuse); every JSON it reads is bounded in size and depth
(:func:`loads_json`), so a hostile file is a clear error, never a ``RecursionError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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
    "JSONLimitError",
    "WriteError",
    "atomic_file",
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps_json",
    "loads_json",
    "make_readable",
    "read_json_file",
    "remove_leftovers",
    "remove_stale_leftovers",
    "temporary_folder",
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

#: The most deeply nested JSON lenet5 reads (its own files nest three levels deep).
MAX_JSON_DEPTH = 32
#: The largest JSON file lenet5 reads (its own are a few kB).
MAX_JSON_BYTES = 16 * 2**20
# The key of a written JSON object that says which nulls stand for non-finite numbers.
NON_FINITE_KEY = "non_finite"


def _host_tag() -> str:
    """A short tag of this host, for temporary names (host names may hold any character)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


# ".NAME.<host>-<pid>.<random>.tmp": who made a temporary file or folder.
_OWNER = re.compile(r"\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[^.]*\.tmp$")


def _tmp_prefix(name: str) -> str:
    """The prefix of a temporary name for ``name``, naming this host and process."""
    return f"{TMP_PREFIX}{name}.{_host_tag()}-{os.getpid()}."


class WriteError(OSError):
    """A file or folder could not be written (disk full, no permission...); names the path.

    ``errno`` is the operating system's; the message is ``"cannot write PATH: CAUSE"``.
    """

    def __str__(self) -> str:
        return str(self.strerror)


# Users import it from the top level (this module is private), and reprs, pickles and the
# API reference say so.
WriteError.__module__ = "lenet5"


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
            prefix=_tmp_prefix(path.name), suffix=TMP_SUFFIX, dir=path.parent
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
            tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=TMP_SUFFIX, dir=path.parent)
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


@contextlib.contextmanager
def temporary_folder(parent: str | os.PathLike[str], name: str) -> Iterator[Path]:
    """Yield a new hidden folder in ``parent`` (created if needed), removed at the end.

    Its name (``.NAME.<host>-<pid>.<random>.tmp``) says who made it, so that if this
    process is killed, :func:`remove_stale_leftovers` in ``parent`` removes it later.
    """
    parent = Path(parent)
    with _named(parent):
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(name), suffix=TMP_SUFFIX, dir=parent))
    try:
        yield tmp
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


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # another user's process
    return False


def remove_stale_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files and folders in ``folder`` whose writer is dead.

    Unlike :func:`remove_leftovers`, safe while other processes write there: only names
    made on this host by a process that no longer runs are removed (a writer killed with
    SIGKILL, a power cut); a live writer's, another host's and foreign files are kept.

    Returns:
        What was removed.
    """
    removed = []
    mine = _host_tag()
    with contextlib.suppress(OSError):
        for entry in Path(folder).glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
            match = _OWNER.search(entry.name)
            if match is None or match["host"] != mine or not _process_gone(int(match["pid"])):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


class JSONLimitError(ValueError):
    """A JSON text is not strict JSON, is too large or too deeply nested (the message says
    which; the caller names the file)."""


def _finite(value: Any, path: str, reasons: dict[str, str]) -> Any:
    """``value`` with every non-finite float replaced by ``None``, noted in ``reasons``."""
    if isinstance(value, float) and not math.isfinite(value):
        reasons[path or "$"] = repr(value)  # 'nan', 'inf' or '-inf'
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), reasons) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", reasons) for i, v in enumerate(value)]
    return value


def _with_reasons(value: Any) -> Any:
    """An object with its non-finite numbers as ``None`` and the reason beside them."""
    reasons: dict[str, str] = {}
    clean = _finite(value, "", reasons)
    if reasons and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = reasons
    return clean


def dumps_json(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON of ``value``: no ``NaN``, ``Infinity`` or ``-Infinity`` is ever written.

    A non-finite float becomes ``null``, and the object that holds it says why: a key
    ``"non_finite"`` maps the path of each such ``null`` to the number it stands for, e.g.
    ``{"test_loss": null, "non_finite": {"test_loss": "nan"}}``. The reasons go into the
    top-level object, or, for a top-level list, into each object of the list (paths
    relative to it).

    Raises:
        TypeError: For a value JSON cannot hold (as :func:`json.dumps`).
    """
    if isinstance(value, (list, tuple)):
        value = [_with_reasons(v) if isinstance(v, Mapping) else v for v in value]
    clean = _with_reasons(value)
    return json.dumps(clean, indent=indent, allow_nan=False)


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not JSON (strict JSON has no NaN or Infinity)")


def _depth(value: Any) -> int:
    """How deeply containers nest in ``value`` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse strict JSON, bounded in depth.

    Raises:
        JSONLimitError: If the text is not strict JSON (the parser's position given), holds
            ``NaN``/``Infinity``, a number too long to convert, or nests deeper than
            ``max_depth``; a ``ValueError``, so one ``except ValueError`` catches all.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {max_depth} levels") from None
    except JSONLimitError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, too many digits
        raise JSONLimitError(f"not valid JSON ({exc})") from None
    if _depth(value) > max_depth:
        raise JSONLimitError(f"nested deeper than {max_depth} levels")
    return value


def read_json_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Read a JSON file, bounded in size and depth.

    Raises:
        OSError: If the file cannot be read.
        JSONLimitError: If it is larger than ``max_bytes``, not UTF-8, not strict JSON or
            nested deeper than ``max_depth`` (the message does not name the file).
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JSONLimitError(f"larger than {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONLimitError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return loads_json(text, max_depth=max_depth)
