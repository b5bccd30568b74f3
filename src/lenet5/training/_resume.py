"""Which settings a resumed run may change: applied from the resumed step on, or refused.

Import the names from :mod:`lenet5.training.checkpoint`; this module only keeps that one
small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._checkpoint_files import CheckpointError
from .config import TrainConfig

__all__ = ["OPTIMIZER_SETTINGS", "Override", "ResumeError", "resume_overrides"]


class ResumeError(CheckpointError):
    """A resumed run asks for a setting that cannot take effect, or for fewer epochs than done.

    Attributes:
        settings: The refused settings (:class:`~lenet5.TrainConfig` field names).
    """

    def __init__(self, message: str, settings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.settings = tuple(settings)


@dataclass(frozen=True)
class Override:
    """A setting that a resumed run changed, applied from the step it resumed at.

    Attributes:
        setting: The :class:`~lenet5.TrainConfig` field.
        before: Its value in the checkpoint (as :meth:`~lenet5.TrainConfig.to_dict` writes it).
        after: Its value from then on.
        step: The global step the run resumed at: steps up to it ran with ``before``, the
            steps after it with ``after``.
    """

    setting: str
    before: Any
    after: Any
    step: int

    def to_dict(self) -> dict[str, Any]:
        """The override as plain values (for JSON and for ``trainer.pt``)."""
        return dataclasses.asdict(self)


# Settings a resumed run can never change, and why.
_FIXED = {
    "batch_size": "the batches of every epoch, and the checkpoint's place among them, depend on it",
    "optimizer": "the saved optimizer state belongs to the optimizer it was trained with",
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
    into the restored optimizer; ``label_smoothing``, ``augment`` and ``ema_decay``, which
    shape the steps still to come; ``device``, ``deterministic``, ``val_every``,
    ``eval_batch_size``, ``verbose``, ``engine``, ``strategy`` and ``dist_timeout``, which
    change how the run goes on but not what it computes. Every other change is refused.

    Args:
        saved: The settings the checkpoint was trained with (``TrainConfig.to_dict()``, as
            ``json.loads(trainer_state["config"])``); a missing field counts as its default.
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
