"""A checkpoint's files read back trusting nothing in them, and the newest intact one found.

A checkpoint may have been truncated by a full disk, overwritten or tampered with. The
weights are read with safetensors and the trainer state with ``torch.load(weights_only=True)``
(neither can run code), and the trainer state's structure is checked key by key before
anything uses it, so that any damage gives one line naming the file. Only
:mod:`lenet5.training.checkpoint` uses this module; import from there.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .._io import CHECKPOINTS_DIR, LATEST_NAME, TRAINER_STATE_NAME, WEIGHTS_NAME

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "checkpoints",
    "find_checkpoints",
    "read",
    "select",
    "write_synced",
]

#: The ``format_version`` written into ``trainer.pt``, and the only one read back.
FORMAT_VERSION = 1

NAME = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d+))?$")
# What torch.save writes: a zip archive.
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match the run resuming from it."""


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoint folders in ``folder``, oldest first (a mid-epoch one before its epoch)."""

    def progress(match: re.Match[str]) -> tuple[int, float]:
        batch = match.group(2)
        return int(match.group(1)), float(batch) if batch is not None else float("inf")

    found = sorted((progress(m), p) for p in folder.iterdir() if (m := NAME.match(p.name)))
    return [p for _, p in found]


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and wait until it is on the disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def find_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint folders in ``directory``, oldest first (none if it does not exist)."""
    directory = Path(directory)
    return checkpoints(directory) if directory.is_dir() else []


# ---------------------------------------------------------------- one checkpoint


def read(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(weights, trainer_state)`` of the checkpoint ``folder``, both checked.

    Raises:
        CheckpointError: Naming the file that is missing or damaged, in one line.
    """
    weights_file, state_file = folder / WEIGHTS_NAME, folder / TRAINER_STATE_NAME
    for file in (weights_file, state_file):
        if not file.is_file():
            raise CheckpointError(f"checkpoint {folder} is damaged: {file.name} is missing")
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{weights_file} is damaged: not a readable safetensors file ({_one_line(exc)})"
        ) from None
    state = _load_state(state_file)
    problem = _problem(state)
    if problem is not None:
        raise CheckpointError(f"{state_file} is damaged: {problem}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{state_file}: checkpoint format {state['format_version']!r} is not supported "
            f"(expected {FORMAT_VERSION}); resume it with the lenet5 version that wrote it"
        )
    state["path"] = str(folder)
    return weights, state


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _load_state(file: Path) -> Any:
    """``torch.load(file, weights_only=True)``, with our one-line message for any failure."""
    try:
        with open(file, "rb") as f:
            if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                raise CheckpointError(f"{file} is damaged: it is not a file that torch.save wrote")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes about pickle protocols
            return torch.load(file, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"the Python object {named.group(1)}" if named else "Python objects"
        raise CheckpointError(
            f"{file} is damaged: it refers to {what}, which a checkpoint never holds "
            "(refused; nothing in it was run)"
        ) from None
    except Exception as exc:  # torch.load raises many kinds for a broken archive
        raise CheckpointError(
            f"{file} is damaged: truncated or corrupt ({type(exc).__name__})"
        ) from None


def _is_rng_state(value: object) -> bool:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        return False
    try:
        torch.Generator().set_state(value)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_config(value: object) -> bool:
    try:
        return isinstance(value, str) and isinstance(json.loads(value), dict)
    except ValueError:
        return False


def _dict_of(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: (
        isinstance(v, dict) and all(isinstance(k, str) and check(x) for k, x in v.items())
    )


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def _is_progress(v: object) -> bool:
    if not isinstance(v, dict) or not {"batches", "loss_sum", "correct", "seen"} <= set(v):
        return False
    scalars = all(
        isinstance(v[k], torch.Tensor) and v[k].numel() == 1 for k in ("loss_sum", "correct")
    )
    return (
        scalars
        and _is_count(v["batches"])
        and _is_count(v["seen"])
        and _optional(_is_rng_state)(v.get("generator"))
        and _optional(_is_rng_state)(v.get("torch_rng"))
    )


def _is_rng(v: object) -> bool:
    return (
        isinstance(v, dict)
        and _is_rng_state(v.get("torch"))
        and _is_rng_state(v.get("generator"))
        and (
            "cuda" not in v
            or (
                isinstance(v["cuda"], list)
                and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in v["cuda"])
            )
        )
    )


def _is_optimizer(v: object) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("state"), dict)
        and isinstance(v.get("param_groups"), list)
        and all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in v["param_groups"]
        )
    )


def _is_override(v: object) -> bool:
    return isinstance(v, dict) and isinstance(v.get("setting"), str) and _is_count(v.get("step"))


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# Each key of trainer.pt, what it must be, and how that is said.
_SCHEMA: dict[str, tuple[Callable[[object], bool], str]] = {
    "format_version": (_is_count, "a version number"),
    "epoch": (_is_count, "a non-negative integer"),
    "global_step": (_is_count, "a non-negative integer"),
    "config": (_is_config, "the settings as JSON"),
    "optimizer": (_optional(_is_optimizer), "an optimizer state"),
    "scheduler": (_optional(_dict_of(lambda _: True)), "a scheduler state"),
    "ema": (_optional(_dict_of(lambda t: isinstance(t, torch.Tensor))), "a dict of tensors"),
    "history": (
        lambda v: isinstance(v, list) and all(_dict_of(_is_number)(h) for h in v),
        "a list of metric dicts",
    ),
    "epoch_progress": (_optional(_is_progress), "the progress within an epoch"),
    "callbacks": (_dict_of(lambda s: isinstance(s, dict)), "a dict of callback states"),
    "rng": (_is_rng, "the random-generator states"),
}
# Keys that older checkpoints of the same format do not have.
_OPTIONAL: dict[str, tuple[Callable[[object], bool], str]] = {
    "world_size": (lambda v: _is_count(v) and bool(v), "a positive integer"),
    "train_size": (_is_count, "a non-negative integer"),
    "overrides": (
        lambda v: isinstance(v, list) and all(_is_override(o) for o in v),
        "a list of overrides",
    ),
    "scaler": (_optional(_dict_of(lambda _: True)), "a gradient-scaler state"),
}


def _problem(state: object) -> str | None:
    """What is wrong with a loaded trainer state, or ``None``."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a trainer state"
    missing = [k for k in _SCHEMA if k not in state]
    if missing:
        return f"it lacks {', '.join(map(repr, missing))}"
    for key, (check, what) in {**_SCHEMA, **_OPTIONAL}.items():
        if key in state and not check(state[key]):
            return f"{key!r} is not {what}"
    return None


# ------------------------------------------------------------ choosing one of them


def _explicit(path: Path) -> Path | None:
    """The checkpoint folder ``path`` names itself (or one of its files names), if any."""
    if path.is_file() and path.name in (WEIGHTS_NAME, TRAINER_STATE_NAME):
        path = path.parent
    if path.is_dir() and ((path / TRAINER_STATE_NAME).exists() or NAME.match(path.name)):
        return path
    return None


def _candidates(folder: Path) -> list[Path]:
    """The checkpoints of ``folder`` to try, best first: the one ``latest`` names, then the
    older ones, newest first (any sorting after ``latest`` belong to another run)."""
    found = checkpoints(folder)
    latest = folder / LATEST_NAME
    if latest.is_file():
        name = latest.read_bytes()[:64].decode("utf-8", "replace").strip()
        names = [p.name for p in found]
        if name in names:
            found = found[: names.index(name) + 1]
    return found[::-1]


def select(path: Path, stacklevel: int) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint ``path`` means, read: ``(folder, weights, trainer_state)``.

    ``stacklevel`` is :func:`warnings.warn`'s, counted from here (2: the caller).

    A checkpoint folder (or one of its files) is read as it is: damage is an error. In a
    folder of checkpoints (or a run folder's ``checkpoints/``), a damaged newest checkpoint
    is passed over, with a warning naming it and the one used instead.

    Raises:
        CheckpointError: If no intact checkpoint is there.
    """
    explicit = _explicit(path)
    if explicit is not None:
        return (explicit, *read(explicit))
    for folder in (path, path / CHECKPOINTS_DIR):
        candidates = _candidates(folder) if folder.is_dir() else []
        damaged: list[CheckpointError] = []
        for candidate in candidates:
            try:
                weights, state = read(candidate)
            except CheckpointError as exc:
                damaged.append(exc)
                continue
            if damaged:
                more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
                warnings.warn(
                    f"passing over a damaged checkpoint{more}: {damaged[0]}; using "
                    f"{candidate}, the newest intact one",
                    stacklevel=stacklevel,
                )
            return candidate, weights, state
        if damaged:
            raise CheckpointError(
                f"no intact checkpoint in {folder}: {len(damaged)} found, all damaged; the "
                f"newest: {damaged[0]}"
            )
    raise CheckpointError(
        f"no checkpoint found in {path}: expected a folder with {WEIGHTS_NAME} and "
        f"{TRAINER_STATE_NAME}, or a run folder with {CHECKPOINTS_DIR}/ (train with "
        "--out DIR to write them)"
    )
