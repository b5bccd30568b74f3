"""``lenet5 train``: settle everything the arguments decide, then train, save and report.

:func:`_plan` runs before torch is imported, so every usage error (a bad setting, an unknown
recipe, a used ``--out``) answers at once; the run folder's layout is
:class:`~lenet5.training.run.RunFolder`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..training.config import RECIPES, ConfigError, TrainConfig
from ..training.run import RunFolder, RunFolderError, RunSettings
from ._common import PLOT_NAMES, ensure_writable, quote, write_plots
from ._config_flags import add_config_flags, config_from_args
from ._errors import EXIT_INTERRUPTED, EXIT_OK, UsageError, usage_errors
from ._parser import add_data_flags

__all__ = ["register"]

# The stop reason of a run stopped by Ctrl-C, told apart from a callback's stop.
_CTRL_C = "interrupted (Ctrl-C)"


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
    parser.set_defaults(func=cmd_train)


class _Plan(NamedTuple):
    """What a ``lenet5 train`` command will do, settled before anything heavy is loaded."""

    run: RunFolder
    dataset: str
    config: TrainConfig
    callbacks: list[str]


def _plan(args: argparse.Namespace) -> _Plan:
    """The run folder, dataset and settings the arguments ask for.

    Raises:
        UsageError: For anything the arguments got wrong.
    """
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    recorded, resumed = RunSettings(), None
    if args.resume is not None:
        resumed = RunFolder.find(args.resume)
        with usage_errors(RunFolderError):
            recorded = resumed.read_settings()
    # The dataset belongs to the run: a resumed run keeps it unless told otherwise.
    dataset = args.dataset or recorded.dataset or "mnist"
    run = RunFolder(args.out) if args.out is not None else resumed or RunFolder.default(dataset)
    if resumed is None:
        try:
            run.check_unused()
        except RunFolderError as exc:
            raise UsageError(
                f"{exc}; continue it with --resume {run.path}, or choose another --out"
            ) from None
    with usage_errors(ConfigError):
        config = config_from_args(args, recorded.config)
    callbacks = [n.strip() for n in (args.callbacks or "").split(",") if n.strip()]
    return _Plan(run=run, dataset=dataset, config=config, callbacks=callbacks)


def cmd_train(args: argparse.Namespace) -> int:
    """``lenet5 train``."""
    plan = _plan(args)
    if args.plot:
        from ..plotting import require_matplotlib

        require_matplotlib()  # fail before training, not after
    from ..data import load_dataset
    from ..training.checkpoint import find_checkpoint
    from ..training.distributed import is_main_process

    # Fails early, with a clear message, when there is nothing to resume.
    checkpoint = find_checkpoint(args.resume) if args.resume is not None else None
    trainer = _trainer(plan, args.checkpoint_every)
    train_set = load_dataset(plan.dataset, args.data_dir, split="train", download=args.download)
    test_set = load_dataset(plan.dataset, args.data_dir, split="test", download=False)
    # Under torchrun every process runs this command; only rank 0 writes and prints.
    main_process = is_main_process()
    val = None if plan.config.val_split else test_set
    if main_process:
        _prepare(plan)
        if plan.config.verbose:
            _announce(plan, len(train_set))
    with _stop_on_ctrl_c(trainer):
        state = trainer.fit(train_set, val, resume=checkpoint)
    if state.stop_reason == _CTRL_C:
        _print_resume_command(state, plan.run, args.data_dir)
        return EXIT_INTERRUPTED
    if not main_process:
        return EXIT_OK
    return _finish(plan, trainer, state, train_set, test_set, plots=args.plot)


def _trainer(plan: _Plan, checkpoint_every: int) -> Any:
    """The Trainer, after checking the callback names, the device and the strategy."""
    from ..devices import resolve_device
    from ..training.callbacks import Checkpoint, CSVLogger, UnknownCallbackError
    from ..training.distributed import DistributedError, resolve_strategy
    from ..training.trainer import Trainer

    callbacks: list[Any] = [
        CSVLogger(plan.run.metrics_file),
        Checkpoint(plan.run.checkpoints_dir, every=checkpoint_every),
        *plan.callbacks,
    ]
    # A misspelt name on the command line is a usage error; a broken plugin is not.
    with usage_errors(UnknownCallbackError):
        trainer = Trainer(callbacks=callbacks, config=plan.config)
    resolve_device(plan.config.device)  # fail before anything is loaded or written
    with usage_errors(DistributedError):
        resolve_strategy(plan.config.strategy)
    return trainer


def _announce(plan: _Plan, train_images: int) -> None:
    held_out = plan.config.val_split
    where = f"{held_out:,} held-out images" if held_out else "the test set"
    print(
        f"Training LeNet-5 on {plan.dataset} ({train_images - held_out:,} images), "
        f"validating on {where}; output in {plan.run.path}",
        flush=True,
    )


def _prepare(plan: _Plan) -> None:
    """Create the run folder and record the settings, before training starts."""
    ensure_writable(plan.run.path, "--out")
    plan.run.write_settings(plan.config, plan.dataset)


def _finish(
    plan: _Plan, trainer: Any, state: Any, train_set: Any, test_set: Any, *, plots: bool
) -> int:
    """Test the trained model, save it with its results, and report."""
    result = trainer.evaluate(test_set)
    plan.run.save_model(
        trainer.model,
        {
            "dataset": plan.dataset,
            "test_accuracy": f"{result.accuracy:.2f}",
            "mean": repr(train_set.mean),
            "std": repr(train_set.std),
            "classes": json.dumps(list(train_set.classes)),
            "train_config": json.dumps(plan.config.to_dict()),
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
        write_plots(plan.run.path, result, test_set, history=state.history)
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    if plan.config.verbose:
        _print_summary(state, result, plan.run, plots=plots)
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_ctrl_c(trainer: Any) -> Iterator[None]:
    """First Ctrl-C: finish the current batch, save a checkpoint, stop. Second: abort.

    Not under a distributed launcher: the processes would stop after different batches and
    wait for each other forever; there Ctrl-C ends the run (resume from the last
    checkpoint).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or int(os.environ.get("WORLD_SIZE", "1")) > 1
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        state = trainer.state
        if state is None or state.stop_requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        print(
            "\nStopping after this batch (Ctrl-C again to abort without saving)...",
            file=sys.stderr,
            flush=True,
        )
        state.stop(_CTRL_C)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_resume_command(state: Any, run: RunFolder, data_dir: Path | None) -> None:
    command = f"lenet5 train --resume {quote(run.path)}"
    if data_dir is not None:  # the data folder is not recorded in the run folder
        command += f" --data-dir {quote(data_dir)}"
    print(
        f"\nInterrupted at epoch {state.epoch}, batch {state.batch_in_epoch} of "
        f"{state.steps_per_epoch}; checkpoint saved. Resume with:\n  {command}",
        file=sys.stderr,
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
