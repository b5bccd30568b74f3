"""The checkpoint format, both directions, and resuming: one module, read top to bottom.

A checkpoint is a folder ``epoch-NNNN`` (``epoch-NNNN-batch-BBBBBB`` when a run stopped
mid-epoch) with the weights as ``model.safetensors`` and the rest of the training state as
``trainer.pt``, which is read back with ``torch.load(weights_only=True)`` (tensors and plain
containers only, no arbitrary objects) and checked key by key. The folder is written under a
temporary name and renamed into place; the text file ``latest`` beside it names the newest
complete checkpoint and is replaced atomically too. A damaged newest checkpoint in a folder
of checkpoints is passed over for the newest intact one, with a warning.

In order: the errors (:class:`CheckpointError`, and :class:`ResumeError` for a resume that
cannot be honoured); the files read back trusting nothing in them, and the checkpoint a path
means; the resume rules (:func:`resume_overrides`: which changed settings a resumed run
applies from its step on, which it refuses); :class:`CheckpointConnector`, the one place
that knows what goes into ``trainer.pt`` and how it comes back, each part's saving beside its
restoring (as Lightning's checkpoint connector does); and shortcuts to it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .._hints import warn
from .._io import (
    CHECKPOINTS_DIR,
    LATEST_NAME,
    TRAINER_STATE_NAME,
    WEIGHTS_NAME,
    atomic_folder,
    atomic_write_text,
    dumps_json,
    loads_json,
)
from ..weights import WeightsError, check_finite
from ._modules import strip_wrapper_prefixes, unwrap
from .config import TrainConfig
from .state import Override, TrainState

__all__ = [
    "FORMAT_VERSION",
    "OPTIMIZER_SETTINGS",
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

# ------------------------------------------------------------------- the errors


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match the run resuming from it."""


class ResumeError(CheckpointError):
    """A resumed run asks for a setting that cannot take effect, or for fewer epochs than done.

    Attributes:
        settings: The refused settings (:class:`~lenet5.TrainConfig` field names).
    """

    def __init__(self, message: str, settings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.settings = tuple(settings)


# ------------------------------------------------------- the files, read back


#: The ``format_version`` written into ``trainer.pt``, and the only one read back.
FORMAT_VERSION = 1

NAME = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d+))?$")
# What torch.save writes: a zip archive.
_ZIP_MAGIC = b"PK\x03\x04"


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
        return isinstance(value, str) and isinstance(loads_json(value), dict)
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


def select(path: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint ``path`` means, read: ``(folder, weights, trainer_state)``.

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
                warn(
                    f"passing over a damaged checkpoint{more}: {damaged[0]}; using "
                    f"{candidate}, the newest intact one"
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


# ------------------------------------------------------------- the resume rules


# Settings a resumed run can never change, and why.
_FIXED = {
    "batch_size": "the batches of every epoch, and the checkpoint's place among them, depend on it",
    "optimizer": "the saved optimizer state belongs to the optimizer it was trained with",
    "no_decay": (
        "the saved optimizer state is laid out in parameter groups, which no_decay splits "
        "(one group, or two)"
    ),
    "param_groups": (
        "the saved optimizer state is laid out in the parameter groups it was trained with "
        "(a callable is compared by its qualified name)"
    ),
    "scheduler": "the saved schedule belongs to the scheduler it was trained with",
    "seed": "the random states come from the checkpoint, so a new seed would never be used",
    "val_split": "it decides which images are trained on",
    "accumulate_grad_batches": "the steps done so far and the schedule count its groups",
    "mean": "the trained weights expect the inputs normalised as before",
    "std": "the trained weights expect the inputs normalised as before",
}
#: Settings written into the restored optimizer's parameter groups when they change.
OPTIMIZER_SETTINGS = ("lr", "weight_decay", "momentum")


def _scheduled(config: TrainConfig) -> bool:
    sched = config.scheduler
    return sched is not None and not (isinstance(sched, str) and sched.lower() == "none")


def _why_refused(name: str, current: TrainConfig) -> str | None:
    """Why a change of ``name`` cannot take effect in a resumed run, or ``None`` if it can."""
    if name in _FIXED:
        return _FIXED[name]
    optimizer, schedule = current.optimizer, current.to_dict()["scheduler"]
    scheduled = _scheduled(current)
    if name == "epochs" and scheduled:
        return f"the {schedule!r} schedule is laid out for that length"
    if name in OPTIMIZER_SETTINGS and not isinstance(optimizer, str):
        return "the optimizer is built by a callable, which sets its own"
    if name == "lr" and scheduled:
        return f"the {schedule!r} schedule sets it at every step"
    if name == "momentum" and isinstance(optimizer, str) and optimizer.lower() != "sgd":
        return f"only sgd uses it, and the optimizer is {optimizer!r}"
    # OneCycleLR cycles the momentum too; a callable schedule may do anything.
    if name == "momentum" and scheduled and str(schedule).lower() != "cosine":
        return f"the {schedule!r} schedule may set it at every step"
    return None


def _same(name: str, a: Any, b: Any) -> bool:
    """Whether two values of setting ``name`` mean the same (names in any case, and no
    schedule or augmentation as ``None`` or ``"none"``)."""
    if name in ("optimizer", "scheduler", "augment"):
        a, b = (("none" if v is None else v.lower() if isinstance(v, str) else v) for v in (a, b))
    return bool(a == b)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resume_overrides(
    saved: Mapping[str, Any], current: TrainConfig, *, epochs_done: int, global_step: int
) -> list[Override]:
    """The settings a resumed run changes, each applied from the step it resumes at.

    Applied: ``epochs`` (without a schedule; never below ``epochs_done``), ``lr`` (without a
    schedule), ``weight_decay`` and ``momentum`` (``sgd``'s) of a named optimizer, written
    into the restored optimizer's groups as this run's settings build each group (a group
    with its own value, such as ``no_decay``'s ``weight_decay=0``, keeps it);
    ``label_smoothing``, ``augment`` and ``ema_decay``, which shape the steps still to come;
    ``device``, ``deterministic``, ``val_every``, ``eval_batch_size``, ``verbose``,
    ``engine``, ``strategy`` and ``dist_timeout``, which change how the run goes on but not
    what it computes. Every other change is refused
    (``no_decay`` and ``param_groups`` among them: the saved optimizer state is laid out
    in the groups).

    Args:
        saved: The settings the checkpoint was trained with (``TrainConfig.to_dict()``, as
            ``loads_json(trainer_state["config"])``); a missing field counts as its default.
        current: The settings of the resuming run.
        epochs_done: The checkpoint's ``epoch`` (one cut short mid-epoch counts: its steps
            are done).
        global_step: The checkpoint's ``global_step``, where the overrides take effect.

    Returns:
        One :class:`Override` per changed setting, in field order (empty if none changed).

    Raises:
        ResumeError: Naming every refused setting with its saved and new value, why it
            cannot change and what to do instead, in one line.
    """
    now = current.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    before = {name: saved.get(name, defaults[name]) for name in now}
    changed = [name for name in now if not _same(name, before[name], now[name])]
    refused: list[tuple[str, str, str]] = []  # (setting, why, what to resume with)
    if now["epochs"] < epochs_done:
        why = f"the run has reached epoch {epochs_done} already"
        refused.append(("epochs", why, f"epochs >= {epochs_done}"))
    for name in changed:
        why_not = _why_refused(name, current)
        if why_not is not None and name not in {n for n, _, _ in refused}:
            fix = f"{name}={_shown(before[name])}"
            if name == "epochs":
                fix = f"the same number of epochs ({before['epochs']})"
            refused.append((name, why_not, fix))
    if refused:
        items = "; ".join(
            f"{name} {_shown(now[name])} (trained with {_shown(before[name])}: {why})"
            for name, why, _ in refused
        )
        fixes = " and ".join(fix for _, _, fix in refused)
        raise ResumeError(
            f"cannot resume with {items}; resume with {fixes}, or start a new run",
            [name for name, _, _ in refused],
        )
    return [Override(name, before[name], now[name], global_step) for name in changed]


# --------------------------------------------------- the format, both directions


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
            lenet5.WriteError: If it cannot be written (``cannot write PATH: CAUSE``);
                the previous checkpoints stay as they were.
            CheckpointError: If the weights hold NaN or infinite values (a diverged run):
                nothing is written.
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
        try:  # a diverged run's weights never replace the last good checkpoint
            check_finite(weights, what=f"the checkpoint of epoch {state.epoch}")
        except WeightsError as exc:
            raise CheckpointError(str(exc)) from None
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
            "config": dumps_json(state.config.to_dict()),
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

    def restore(self, path: str | os.PathLike[str]) -> list[Override]:
        """Load the checkpoint that ``path`` means (see :meth:`find`) into the state.

        Settings that differ from the checkpoint's are applied from the resumed step on or
        refused (:func:`resume_overrides`); ``state.overrides`` gets the earlier resumes'
        overrides followed by this one's.

        Args:
            path: A checkpoint folder, a folder of checkpoints or a run folder.

        Returns:
            This resume's overrides.

        Raises:
            ResumeError: If a changed setting cannot take effect, or the run had another
                number of processes.
            CheckpointError: If no intact checkpoint is there, or it does not fit the model.
        """
        weights, saved = self.load(path)
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
            loads_json(saved["config"]),
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
        # The groups as this run's settings built them: a changed rate, decay or momentum
        # reaches each group as the settings give it (no_decay's group keeps decay 0, a
        # param_groups group its own rate).
        built = [
            {k: g[k] for k in (*OPTIMIZER_SETTINGS, "nesterov") if k in g}
            for g in optimizer.param_groups
        ]
        optimizer.load_state_dict(saved)
        changed = {o.setting for o in overrides} & set(OPTIMIZER_SETTINGS)
        for group, kept, fresh in zip(optimizer.param_groups, flags, built, strict=True):
            group.update(kept)
            # The saved groups bring their own rates back: the overrides go in after them.
            for setting in sorted(changed):
                if setting in fresh:
                    group[setting] = fresh[setting]
                if setting == "momentum" and "nesterov" in fresh:
                    group["nesterov"] = fresh["nesterov"]

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
        for cb in self.state.callbacks:
            sd = cb.state_dict()
            if sd:
                states[cb.key] = sd
        return states

    def _restore_callbacks(self, saved: dict[str, Any]) -> None:
        for cb in self.state.callbacks:
            if cb.key in saved:
                cb.load_state_dict(saved[cb.key])

    # ---------------------------------------------------------------- the files alone

    @staticmethod
    def find(path: str | os.PathLike[str]) -> Path:
        """Find the checkpoint folder that ``path`` means, and check that it is intact.

        ``path`` may be a checkpoint folder itself (damage is then an error), a folder of
        checkpoints (the one ``latest`` names, or else the newest; a damaged one is passed
        over for the newest intact one before it, with a warning naming both), or a run
        folder with a ``checkpoints`` subfolder.

        Raises:
            CheckpointError: If no intact checkpoint is there, in one line naming the file.
        """
        return select(Path(path))[0]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Read a checkpoint's weights and trainer state (no arbitrary objects are unpickled,
        and the trainer state's structure is checked); which checkpoint, as :meth:`find`.

        Returns:
            ``(model_state_dict, trainer_state)``; ``trainer_state["path"]`` is the folder.

        Raises:
            CheckpointError: If the files are missing, damaged or of another format version.
        """
        _, weights, trainer_state = select(Path(path))
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
    return CheckpointConnector.find(path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's ``(weights, trainer_state)`` (:meth:`CheckpointConnector.load`)."""
    return CheckpointConnector.load(path)


def prune_checkpoints(
    directory: str | os.PathLike[str], keep: int, newest: str | os.PathLike[str] | None = None
) -> None:
    """Delete all but the ``keep`` newest checkpoints (:meth:`CheckpointConnector.prune`)."""
    CheckpointConnector.prune(directory, keep, newest)
