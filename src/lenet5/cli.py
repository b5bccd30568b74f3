"""The ``lenet5`` command line.

This is the one place that turns the library's exceptions into one-line messages: usage
errors exit with code 2, runtime failures with code 1, and ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A command-line argument is wrong (exit code 2)."""


def _train_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that map one to one onto TrainConfig fields (None = not given)."""
    g = parser.add_argument_group("training options (default: the reference recipe)")
    g.add_argument("--epochs", type=int, help="passes over the training data (100)")
    g.add_argument("--batch-size", type=int, help="examples per step (32)")
    g.add_argument("--lr", type=float, help="learning rate (1e-3)")
    g.add_argument("--optimizer", help="adam, adamw or sgd (adam)")
    g.add_argument("--weight-decay", type=float, help="weight decay (0)")
    g.add_argument("--scheduler", help="none, cosine or onecycle (none)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (0)")
    g.add_argument("--seed", type=int, help="random seed (0)")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N (auto: CUDA when present)")
    g.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use only deterministic algorithms",
    )
    g.add_argument("--val-every", type=int, help="validate every N epochs; 0 never (20)")
    g.add_argument(
        "--val-split",
        type=int,
        help="hold out N training images for validation instead of using the test set (0)",
    )


_CONFIG_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "scheduler",
    "label_smoothing",
    "seed",
    "device",
    "deterministic",
    "val_every",
    "val_split",
)


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the IDX files (default: $LENET5_DATA_DIR)",
    )
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=("mnist", "fashion-mnist"),
        help="which dataset (mnist)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if it is missing (needs internet)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lenet5``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lenet5",
        description="Train, evaluate and use LeNet-5 on MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"lenet5 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train a model",
        description="Train LeNet-5. The defaults reproduce the reference recipe (Adam 1e-3, "
        "batch 32, 100 epochs, validation every 20 epochs on the test set).",
    )
    _data_flags(train)
    _train_flags(train)
    train.add_argument(
        "--out",
        type=Path,
        help="output folder for model.safetensors, config, metrics and checkpoints "
        "(default: runs/<dataset>-<time>; with --resume, the resumed folder)",
    )
    train.add_argument(
        "--callbacks",
        default="",
        help="comma-separated built-in or plugin callback names, e.g. early_stopping,timer",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        help="write a resumable checkpoint every N epochs (1)",
    )
    train.add_argument("--resume", type=Path, help="continue the run in this output folder")
    train.add_argument("--quiet", action="store_true", help="no log lines or progress bar")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate weights on the test set")
    _data_flags(ev)
    ev.add_argument(
        "--weights",
        default="DEFAULT",
        help="registry name, folder, .safetensors file or Hub repo id (DEFAULT)",
    )
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ev.add_argument("--batch-size", type=int, default=2048, help="images per forward pass")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.set_defaults(func=cmd_evaluate)

    info = sub.add_parser("info", help="versions, devices, and where data and weights are found")
    info.add_argument("--data-dir", type=Path, help="folder to check for data")
    info.set_defaults(func=cmd_info)
    return parser


# ----------------------------------------------------------------------- train


def _config_from_args(args: argparse.Namespace, base: dict[str, Any] | None) -> Any:
    from .training import TrainConfig

    values: dict[str, Any] = dict(base or {})
    for name in _CONFIG_FLAGS:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    if args.quiet:
        values["verbose"] = False
    return TrainConfig.from_kwargs(values)


def cmd_train(args: argparse.Namespace) -> int:
    """``lenet5 train``."""
    from .data import load_dataset
    from .model import LeNet5
    from .training import Checkpoint, CSVLogger, Trainer
    from .training.checkpoint import atomic_write_text, find_checkpoint

    base = None
    if args.resume is not None:
        checkpoint = find_checkpoint(args.resume)  # fails early with a clear message
        saved = args.resume / "train_config.json"
        if saved.is_file():
            base = json.loads(saved.read_text(encoding="utf-8"))
        out = args.out or args.resume
    else:
        checkpoint = None
        out = args.out or Path("runs") / f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        config = _config_from_args(args, base)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    names = [n.strip() for n in args.callbacks.split(",") if n.strip()]

    train_set = load_dataset(args.dataset, args.data_dir, split="train", download=args.download)
    test_set = load_dataset(args.dataset, args.data_dir, split="test", download=False)
    _check_writable(out)
    val = None if config.val_split else test_set
    callbacks: list[Any] = [
        CSVLogger(out / "metrics.csv"),
        Checkpoint(out / "checkpoints", every=args.checkpoint_every),
        *names,
    ]
    trainer = Trainer(callbacks=callbacks, config=config)
    atomic_write_text(out / "train_config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    if config.verbose:
        where = "the test set" if val is not None else f"{config.val_split} held-out images"
        print(
            f"Training LeNet-5 on {args.dataset} ({len(train_set):,} images), validating on "
            f"{where}; output in {out}",
            flush=True,
        )
    try:
        state = trainer.fit(train_set, val, resume=checkpoint)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Resume with: lenet5 train --resume {_quote(out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    model = trainer.model
    assert isinstance(model, LeNet5)
    result = trainer.evaluate(test_set)
    model.save_pretrained(
        out,
        metadata={
            "dataset": args.dataset,
            "test_accuracy": f"{result.accuracy:.2f}",
            "train_config": json.dumps(config.to_dict()),
        },
    )
    summary = {
        "dataset": args.dataset,
        "epochs_run": state.epoch,
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "history": state.history,
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    if config.verbose:
        print(f"Saved {out / 'model.safetensors'} (load with LeNet5.from_pretrained({str(out)!r}))")
    return EXIT_OK


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".lenet5-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OSError(
            f"output folder {folder} is not writable ({exc.strerror}); choose another with --out"
        ) from None


# -------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``lenet5 evaluate``."""
    from .data import load_dataset
    from .model import LeNet5
    from .training.callbacks import resolve_device
    from .training.trainer import evaluate

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    model = LeNet5.from_pretrained(args.weights, map_location=device)
    test_set = load_dataset(args.dataset, args.data_dir, split="test", download=args.download)
    result = evaluate(model, test_set, batch_size=args.batch_size)
    if args.json:
        print(
            json.dumps(
                {
                    "weights": str(args.weights),
                    "dataset": args.dataset,
                    "test_accuracy": result.accuracy,
                    "test_loss": result.loss,
                    "correct": result.correct,
                    "total": result.total,
                    "per_class_accuracy": result.per_class_accuracy,
                    "confusion_matrix": result.confusion.tolist(),
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    print(f"Test loss: {result.loss:.4f} ({result.correct:,}/{result.total:,} correct)")
    print("\nPer-class accuracy:")
    for cls, acc in zip(test_set.classes, result.per_class_accuracy, strict=True):
        print(f"  {cls:>12}: {acc:6.2f}%")
    print("\nConfusion matrix (rows: true class, columns: predicted):")
    n = len(test_set.classes)
    width = max(5, len(str(int(result.confusion.max()))) + 1)
    print("      " + "".join(f"{c:>{width}}" for c in range(n)))
    for r in range(n):
        print(f"  {r:>3} " + "".join(f"{int(v):>{width}}" for v in result.confusion[r]))
    return EXIT_OK


# ------------------------------------------------------------------------ info


def cmd_info(args: argparse.Namespace) -> int:
    """``lenet5 info``."""
    import platform

    import torch

    from . import __version__
    from .data import DATA_DIR_ENV, DataError, find_data_dir
    from .training.plugins import available_callbacks

    print(f"lenet5 {__version__} (Python {platform.python_version()}, {platform.platform()})")
    print(
        f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
    )
    for name in ("mnist", "fashion-mnist"):
        try:
            where = str(find_data_dir(args.data_dir, name))
        except DataError as exc:
            where = f"not found ({exc})"
        print(f"{name} data: {where}")
    import os

    print(f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV, '(not set)')}")
    from . import weights

    for name, entry in weights.registry().items():
        print(f"weights {name}: {entry.path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = available_callbacks()
    print("callbacks: " + ", ".join(f"{n} ({src})" for n, src in names.items()))
    for w in caught:
        print(f"warning: {w.message}")
    return EXIT_OK


# ------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        if args.debug:
            raise
        parser.exit(EXIT_USAGE, f"lenet5 {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        message = str(exc) or type(exc).__name__
        print(f"lenet5 {args.command}: error: {message}", file=sys.stderr)
        if not isinstance(exc, (ValueError, OSError, RuntimeError, LookupError, TypeError)):
            print("(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
