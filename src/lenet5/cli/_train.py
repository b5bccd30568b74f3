"""``lenet5 train``: check everything the arguments decide, then train, save and report.

Validate first, write after: the settings, the run folder and ``--plot`` are checked before
torch is imported (:mod:`lenet5.cli._train_plan`), the device, the data, ``--val-split`` and
a resume's changed settings before anything is written. Then the run folder's lock is
taken for the whole command (one writer per run folder), the settings are recorded, and
the run trains; a stop signal saves it (:mod:`lenet5.cli._signals`). The run folder's
layout is :class:`~lenet5.training.run.RunFolder`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from .._io import dumps_json
from ..training.config import RECIPES, ConfigError, TrainConfig
from ..training.run import RunFolder, RunFolderLocked
from ._common import PLOT_NAMES, ensure_writable, quote, write_plots
from ._config_flags import add_config_flags, config_from_args, given_flags
from ._errors import EXIT_FAILURE, EXIT_OK, UsageError, doing, usage_errors
from ._parser import add_data_flags
from ._signals import exit_code, signal_of, stop_on_signals
from ._train_plan import Plan, check_data, make_plan, plan_resume, refuse_locked, refuse_used

__all__ = ["register"]


def register(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``lenet5 train`` to the sub-commands."""
    parser = commands.add_parser(
        "train",
        parents=parents,
        help="train a model",
        description="Train LeNet-5 on the training split and evaluate it on the test split. "
        "The defaults are the reference recipe; --recipe starts from another.",
    )
    add_data_flags(parser, dataset_help="which dataset (default: mnist, or the resumed run's)")
    training = parser.add_argument_group(
        "training options",
        "Each sets the TrainConfig field of the same name. Given flags override --recipe, "
        "which overrides the settings of a resumed run.",
    )
    training.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        help="start from a named recipe (the options below override it)",
    )
    add_config_flags(training, TrainConfig)
    _add_run_flags(parser)
    _add_study_flags(parser)
    parser.set_defaults(func=cmd_train)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The run options: the output folder, callbacks, checkpoints, resume, plots."""
    run = parser.add_argument_group("run options")
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="the run folder: model, settings, metrics, checkpoints (default: "
        "runs/<dataset>-<time>; with --resume, the resumed folder)",
    )
    run.add_argument(
        "--callbacks",
        metavar="NAMES",
        help="comma-separated built-in or plugin callback names, e.g. early_stopping,timer",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="write a resumable checkpoint every N epochs (and after the last)",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the run in this folder (or its checkpoints/, or one checkpoint)",
    )
    run.add_argument(
        "--plot",
        action="store_true",
        help="write PNG plots into the run folder (needs matplotlib: lenet5[plot])",
    )


def _add_study_flags(parser: argparse.ArgumentParser) -> None:
    """The seed study's options (:mod:`lenet5.training.study`)."""
    study = parser.add_argument_group(
        "seed study",
        "Train the same command once per seed, in worker processes, each in its own run "
        "folder OUT/seed-N; print a summary (mean, sample std, min, max) and write "
        "OUT/summary.json. Run the same command again to complete a stopped study.",
    )
    study.add_argument(
        "--seeds",
        metavar="SPEC",
        help="the seeds of a study, e.g. 0-4 or 0,3,7 (needs --out; replaces --seed)",
    )
    study.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="seeds trained at once (default: the usable cores), each with cores/N threads",
    )


def cmd_train(args: argparse.Namespace) -> int:
    """``lenet5 train``: check everything, then take the run folder's lock and train."""
    if args.seeds is not None or args.jobs is not None:
        return _cmd_study(args)
    plan = make_plan(args)
    if args.plot:
        from ..plotting import require_matplotlib

        require_matplotlib()  # fail before training, not after
    from ..training.distributed import is_main_process

    plan = _check_runtime(plan)
    train_set, test_set = _load_data(plan, args)
    check_data(plan, len(train_set))
    if args.resume is not None:
        plan = plan_resume(plan, args, len(train_set) - plan.config.val_split)
    trainer, checkpoints = _trainer(plan, args.checkpoint_every)
    # Under torchrun every process runs this command; only rank 0 writes and prints.
    main_process = is_main_process()
    with _locked(plan) if main_process else contextlib.nullcontext():
        if main_process:
            _prepare(plan, len(train_set))
        with stop_on_signals(trainer, announce=main_process):
            state = trainer.fit(
                train_set,
                None if plan.config.val_split else test_set,
                resume=plan.checkpoint,
            )
        signum = signal_of(state.stop_reason)
        if signum is not None and not _completed(state, plan.config):
            if main_process:
                _print_resume_command(state, plan, args.data_dir, checkpoints.last_path)
            return exit_code(signum)
        if not main_process:
            return EXIT_OK
        return _finish(plan, trainer, state, train_set, test_set, plots=args.plot)


def _cmd_study(args: argparse.Namespace) -> int:
    """``lenet5 train --seeds SPEC``: the same training once per seed (a
    :class:`~lenet5.training.study.Study`); exit 1 when a seed failed."""
    from ..training.study import Study, StudyError

    if args.seeds is None:
        raise UsageError("--jobs runs the seeds of a study: give --seeds too, e.g. --seeds 0-4")
    if args.out is None:
        raise UsageError(
            "--seeds needs --out DIR, the study's folder (run the same command again to "
            "complete a stopped study)"
        )
    if args.resume is not None:
        raise UsageError(
            "a seed study resumes by running the same command again; leave out --resume"
        )
    if "seed" in given_flags(args):
        raise UsageError("--seeds sets each run's --seed; leave out --seed")
    with usage_errors(ConfigError):
        config_from_args(args)  # a bad setting is refused once, not once per seed
    with usage_errors(StudyError):
        study = Study(args.out, args.seeds, study_args(args.argv), jobs=args.jobs)
        study.run()
    return EXIT_FAILURE if study.failed else EXIT_OK


def study_args(argv: list[str]) -> list[str]:
    """The ``lenet5 train`` arguments every seed of a study shares: the command line after
    ``train`` without ``--seeds``, ``--jobs`` and ``--out``, which the study sets."""
    rest = argv[argv.index("train") + 1 :]
    out: list[str] = []
    skip = False
    for token in rest:
        if skip:
            skip = False
            continue
        name, eq, _ = token.partition("=")
        if name in ("--seeds", "--jobs", "--out"):
            skip = not eq
            continue
        out.append(token)
    return out


def _check_runtime(plan: Plan) -> Plan:
    """The device and the strategy, checked before anything is loaded; the processes."""
    from ..devices import resolve_device
    from ..training.distributed import DistributedError, launch_ranks, resolve_strategy

    resolve_device(plan.config.device)
    with usage_errors(DistributedError):
        strategy = resolve_strategy(plan.config.strategy)
    return plan._replace(world_size=launch_ranks()[1] if strategy == "ddp" else 1)


def _load_data(plan: Plan, args: argparse.Namespace) -> tuple[Any, Any]:
    """Both splits of the run's dataset."""
    from ..data import load_dataset

    where = args.data_dir if args.data_dir is not None else "$LENET5_DATA_DIR"
    with doing(f"loading {plan.dataset} from {where}"):
        train_set = load_dataset(plan.dataset, args.data_dir, split="train", download=args.download)
        test_set = load_dataset(plan.dataset, args.data_dir, split="test", download=False)
    return train_set, test_set


def _trainer(plan: Plan, checkpoint_every: int) -> tuple[Any, Any]:
    """The Trainer (after checking the callback names) and its Checkpoint callback."""
    from ..training.callbacks import Checkpoint, CSVLogger, UnknownCallbackError
    from ..training.trainer import Trainer

    checkpoints = Checkpoint(plan.run.checkpoints_dir, every=checkpoint_every)
    callbacks: list[Any] = [CSVLogger(plan.run.metrics_file), checkpoints, *plan.callbacks]
    # A misspelt name on the command line is a usage error; a broken plugin is not.
    with usage_errors(UnknownCallbackError):
        trainer = Trainer(callbacks=callbacks, config=plan.config)
    return trainer, checkpoints


def _locked(plan: Plan) -> contextlib.ExitStack:
    """The run folder's lock, taken (one writer per run folder); held until the stack closes."""
    ensure_writable(plan.run.path, "--out")
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(plan.run.lock())
    except RunFolderLocked as exc:
        raise refuse_locked(exc) from None
    return stack


def _prepare(plan: Plan, train_images: int) -> None:
    """Record the settings (with the lock held), before training starts."""
    if plan.checkpoint is None:
        refuse_used(plan.run)  # another run may have used the folder since the plan
    plan.run.write_settings(plan.start, plan.dataset, plan.overrides)
    if not plan.config.verbose:
        return
    held_out = plan.config.val_split
    where = f"{held_out:,} held-out images" if held_out else "the test set"
    print(
        f"Training LeNet-5 on {plan.dataset} ({train_images - held_out:,} images), "
        f"validating on {where}; output in {plan.run.path}",
        flush=True,
    )
    for o in plan.changed:
        print(
            f"Resumed with {o['setting']} {o['before']!r} -> {o['after']!r} from step {o['step']:,}"
        )


def _completed(state: Any, config: Any) -> bool:
    """Whether the run did every epoch (a stop asked for after its last batch changes
    nothing)."""
    return bool(state.epoch_complete and state.epoch >= config.epochs)


def _finish(
    plan: Plan, trainer: Any, state: Any, train_set: Any, test_set: Any, *, plots: bool
) -> int:
    """Test the trained model, save it with its results, and report."""
    result = trainer.evaluate(test_set)
    record = {**plan.start, "overrides": plan.overrides}
    with doing(f"saving the model in {plan.run.path}"):
        plan.run.save_model(
            trainer.model,
            {
                "dataset": plan.dataset,
                "test_accuracy": f"{result.accuracy:.2f}",
                "mean": repr(state.norm[0]),
                "std": repr(state.norm[1]),
                "classes": dumps_json(list(train_set.classes)),
                "train_config": dumps_json(record),
            },
        )
    plan.run.write_results(
        {
            "dataset": plan.dataset,
            "epochs_run": state.epoch,
            "test_accuracy": result.accuracy,
            "test_loss": result.loss,
            "history": state.history,
        }
    )
    if plots:
        with doing(f"writing the plots into {plan.run.path}"):
            write_plots(plan.run.path, result, test_set, history=state.history)
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    if plan.config.verbose:
        _print_summary(state, result, plan.run, plots=plots)
    return EXIT_OK


def _print_resume_command(
    state: Any, plan: Plan, data_dir: Path | None, checkpoint: Path | None
) -> None:
    command = f"lenet5 train --resume {quote(plan.run.path)}"
    if plan.world_size > 1:
        command = f"torchrun --nproc_per_node={plan.world_size} -m " + command[len("lenet5 ") :]
        command = command.replace("-m train", "-m lenet5 train")
    if data_dir is not None:  # the data folder is not recorded in the run folder
        command += f" --data-dir {quote(data_dir)}"
    saved = f"checkpoint {checkpoint} saved" if checkpoint is not None else "nothing saved"
    print(
        f"\nInterrupted at epoch {state.epoch}, batch {state.batch_in_epoch} of "
        f"{state.steps_per_epoch}; {saved}. Resume with:\n  {command}",
        file=sys.stderr,
        flush=True,
    )


def _print_summary(state: Any, result: Any, run: RunFolder, *, plots: bool) -> None:
    seconds = sum(h.get("epoch_seconds", 0.0) for h in state.history)
    validated = [
        (h["val_accuracy"], e) for e, h in enumerate(state.history, 1) if "val_accuracy" in h
    ]
    lines = [
        "",
        "Summary",
        f"  epochs          {state.epoch} ({seconds:.0f} s of training, "
        f"{state.global_step:,} steps on {state.device})",
    ]
    if state.history:
        lines.append(f"  final loss      {state.history[-1]['loss']:.4f}")
    if validated:
        best = max(validated)
        lines.append(f"  best val acc    {best[0]:.2f}% (epoch {best[1]})")
    lines += [
        f"  test accuracy   {result.accuracy:.2f}% ({result.correct:,}/{result.total:,})",
        f"  weights         {run.weights_file}",
        f"  metrics         {run.metrics_file}",
    ]
    if plots:
        lines.append(f"  plots           {run.path}/{{{','.join(PLOT_NAMES)}}}.png")
    lines.append(f"  load with       LeNet5.from_pretrained({str(run.path)!r})")
    print("\n".join(lines))
