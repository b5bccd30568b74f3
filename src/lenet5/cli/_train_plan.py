"""What ``lenet5 train`` will do, settled and checked before anything is written.

:func:`make_plan` runs before torch is imported: the settings, the run folder (not used by
another run, not locked by another process, a folder that can be created). After the data
is loaded, :func:`check_data` checks the values that depend on it (``--val-split``), and
:func:`plan_resume` reads the checkpoint to resume: the settings that change are applied
from the resumed step on or refused (:func:`lenet5.training.checkpoint.resume_overrides`),
before the run folder is touched. A refusal is a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from .._io import loads_json
from ..training.config import ConfigError, TrainConfig
from ..training.run import RunFolder, RunFolderError, RunFolderLocked, RunSettings
from ._common import check_output_folder
from ._config_flags import config_from_args
from ._errors import UsageError, usage_errors

__all__ = ["Plan", "check_data", "make_plan", "plan_resume", "refuse_locked"]


class Plan(NamedTuple):
    """What a ``lenet5 train`` command will do.

    Attributes:
        run: The run folder written.
        dataset: The dataset trained on.
        config: The settings from now on.
        callbacks: The ``--callbacks`` names.
        recorded: What the resumed run folder recorded (empty for a new run).
        start: The settings the run started with (``TrainConfig.to_dict()``).
        overrides: Every resume's overrides so far, this one's last (``Override.to_dict()``).
        checkpoint: The checkpoint folder resumed from, or ``None``.
        world_size: The number of processes (``torchrun``'s, else 1).
        changed: This resume's overrides (the end of ``overrides``).
    """

    run: RunFolder
    dataset: str
    config: TrainConfig
    callbacks: list[str]
    recorded: RunSettings
    start: dict[str, Any]
    overrides: list[dict[str, Any]]
    checkpoint: Path | None = None
    world_size: int = 1
    changed: tuple[dict[str, Any], ...] = ()


def refuse_locked(exc: RunFolderLocked) -> RunFolderLocked:
    """The refusal of a locked run folder, saying what to do (exit code 1)."""
    return RunFolderLocked(
        f"{exc}; one run folder has one writer: wait for that run to end, or choose another --out",
        exc.owner,
    )


def make_plan(args: argparse.Namespace) -> Plan:
    """The run folder, dataset and settings the arguments ask for (torch is not imported).

    Raises:
        UsageError: For anything the arguments got wrong.
        RunFolderLocked: If another process is training in the run folder.
    """
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    recorded, resumed = RunSettings(), None
    if args.resume is not None:
        if not args.resume.exists():
            raise UsageError(f"--resume {args.resume} does not exist")
        resumed = RunFolder.find(args.resume)
        with usage_errors(RunFolderError):
            recorded = resumed.read_settings()
    # The dataset belongs to the run: a resumed run keeps it unless told otherwise.
    dataset = args.dataset or recorded.dataset or "mnist"
    run = RunFolder(args.out) if args.out is not None else resumed or RunFolder.default(dataset)
    if run.path.exists() and not run.path.is_dir():
        raise UsageError(f"--out {run.path} is a file, not a folder")
    try:
        run.check_unlocked()
    except RunFolderLocked as exc:
        raise refuse_locked(exc) from None
    if resumed is None:
        refuse_used(run)
    check_output_folder(run.path, "--out")
    try:
        config = config_from_args(args, recorded.current())
    except ConfigError as exc:
        # A value no flag gave comes from the resumed run's record: name the file.
        named = str(exc).startswith("--") or resumed is None or not recorded.config
        where = "" if named else f"{resumed.config_file if resumed else ''}: "
        raise UsageError(f"{where}{exc}") from None
    callbacks = [n.strip() for n in (args.callbacks or "").split(",") if n.strip()]
    return Plan(
        run=run,
        dataset=dataset,
        config=config,
        callbacks=callbacks,
        recorded=recorded,
        start=config.to_dict(),
        overrides=[],
    )


def refuse_used(run: RunFolder) -> None:
    """Refuse a new run in a folder that holds another run's checkpoints (a usage error)."""
    try:
        run.check_unused()
    except RunFolderError as exc:
        raise UsageError(
            f"{exc}; continue it with --resume {run.path}, or choose another --out"
        ) from None


def check_data(plan: Plan, train_images: int) -> None:
    """Check the settings that depend on the training data's size (before anything is
    written).

    Raises:
        UsageError: If ``--val-split`` holds out every image, or too few are left to feed
            every process.
    """
    from ..training.distributed import steps_per_epoch

    held_out = plan.config.val_split
    if held_out >= train_images:
        raise UsageError(
            f"--val-split {held_out:,} holds out every training image: the {plan.dataset} "
            f"training split has {train_images:,}; hold out fewer"
        )
    left = train_images - held_out
    if steps_per_epoch(left, plan.config.batch_size, plan.world_size) == 0:
        raise UsageError(
            f"{left:,} training images cannot feed {plan.world_size} processes; use more "
            "data, a smaller --val-split, or fewer processes"
        )


def plan_resume(plan: Plan, args: argparse.Namespace, train_size: int) -> Plan:
    """The plan of a resumed run: its checkpoint, its settings from now on and its overrides.

    The settings start from the checkpoint's (what was really trained with), with
    ``--recipe`` and the given flags over them; each change is applied from the resumed
    step on, or refused.

    Args:
        plan: The plan from :func:`make_plan`.
        args: The command's arguments.
        train_size: The training examples of this run (after ``--val-split``).

    Raises:
        UsageError: If a setting cannot change, ``--epochs`` is below the epochs done, or
            the data or the number of processes differ from the run's.
        CheckpointError: If no intact checkpoint is there (exit code 1).
    """
    from ..training.checkpoint import (
        CheckpointError,
        ResumeError,
        find_checkpoint,
        load_checkpoint,
    )
    from ..training.checkpoint import resume_overrides as overrides_of

    checkpoint = find_checkpoint(args.resume)
    _, saved = load_checkpoint(checkpoint)
    try:
        trained_with = loads_json(saved["config"])
    except ValueError as exc:
        raise CheckpointError(
            f"{checkpoint}: its record of the settings is damaged ({exc})"
        ) from None
    if not isinstance(trained_with, dict):
        raise CheckpointError(f"{checkpoint}: its record of the settings is not an object")
    try:
        config = config_from_args(args, trained_with)
    except ConfigError as exc:
        named = str(exc).startswith("--")
        raise UsageError(str(exc) if named else f"{checkpoint}: {exc}") from None
    try:
        new = overrides_of(
            trained_with, config, epochs_done=saved["epoch"], global_step=saved["global_step"]
        )
    except ResumeError as exc:
        raise UsageError(f"{checkpoint}: {exc}") from None
    _check_counts(saved, train_size, plan.world_size)
    earlier = [dict(o) for o in saved.get("overrides", [])]
    start = dict(plan.recorded.config) or _undone(trained_with, earlier)
    changed = tuple(o.to_dict() for o in new)
    return plan._replace(
        config=config,
        start=start,
        overrides=[*earlier, *changed],
        checkpoint=checkpoint,
        changed=changed,
    )


def _undone(settings: dict[str, Any], overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings before ``overrides`` (a run folder that did not record its start)."""
    start = dict(settings)
    for override in reversed(overrides):
        start[override["setting"]] = override["before"]
    return start


def _check_counts(saved: dict[str, Any], train_size: int, world_size: int) -> None:
    """The number of processes and of training examples must be the checkpoint's."""
    where = saved["path"]
    processes = saved.get("world_size", world_size)
    if processes != world_size:
        raise UsageError(
            f"{where}: cannot resume on {world_size} process(es): the run was trained on "
            f"{processes} (each step's batch spans them); resume with torchrun "
            f"--nproc_per_node={processes}, or start a new run"
        )
    examples = saved.get("train_size", train_size)
    if examples != train_size:
        raise UsageError(
            f"{where}: cannot resume on {train_size:,} training images: the run was trained "
            f"on {examples:,} (every epoch's batches depend on them); resume with the same "
            "--data-dir, --dataset and --val-split, or start a new run"
        )
