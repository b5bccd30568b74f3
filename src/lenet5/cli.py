"""The ``lenet5`` command line.

This is the one place that turns the library's exceptions into one-line messages: usage
errors exit with code 2, runtime failures with code 1, an interrupted run with 130, and
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A command-line argument is wrong (exit code 2)."""


# ---------------------------------------------------------------------- parser

_CONFIG_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "scheduler",
    "label_smoothing",
    "augment",
    "ema_decay",
    "seed",
    "device",
    "deterministic",
    "val_every",
    "val_split",
    "engine",
    "strategy",
    "dist_timeout",
)


def _train_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that map one to one onto TrainConfig fields (None = not given)."""
    g = parser.add_argument_group("training options (default: the reference recipe)")
    g.add_argument(
        "--recipe",
        help="start from a named recipe: reference, fast, mnist-v1, mnist-v2, mnist-v3 (the "
        "options below override it)",
    )
    g.add_argument("--epochs", type=int, help="passes over the training data (100)")
    g.add_argument("--batch-size", type=int, help="examples per step (32)")
    g.add_argument("--lr", type=float, help="learning rate (1e-3)")
    g.add_argument("--optimizer", help="adam, adamw or sgd (adam)")
    g.add_argument("--weight-decay", type=float, help="weight decay (0)")
    g.add_argument("--scheduler", help="none, cosine or onecycle (none)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (0)")
    g.add_argument(
        "--augment",
        help="on-device augmentation: affine, elastic, affine,elastic, with optional "
        "arguments, e.g. 'affine(degrees=15),elastic(alpha=8,sigma=3)' (none)",
    )
    g.add_argument("--ema-decay", type=float, help="average the weights with this decay (0: off)")
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
    g.add_argument(
        "--engine",
        help="fast (data resident on the device, fused optimizer) or plain (a DataLoader "
        "loop, for comparison) (fast)",
    )
    g.add_argument(
        "--strategy",
        help="auto (DDP when started by torchrun), single or ddp (auto); under DDP "
        "--batch-size is per process",
    )
    g.add_argument(
        "--dist-timeout",
        type=float,
        help="seconds a process waits for the others before the run fails (300)",
    )


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="folder with the IDX files (default: $LENET5_DATA_DIR)"
    )
    parser.add_argument(
        "--dataset",
        choices=("mnist", "fashion-mnist"),
        help="which dataset (mnist; with --resume, the resumed run's)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if it is missing (needs internet)",
    )


def _weights_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default="DEFAULT",
        help="registry name, folder, .safetensors file or Hub repo id (DEFAULT)",
    )


def _backend_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="inference engine: auto (ONNX Runtime on the CPU when lenet5[onnx] is installed, "
        "else PyTorch), torch, or onnxruntime (auto)",
    )


def _check_backend(backend: str, device: Any) -> None:
    """``--backend`` against ``--device`` and what is installed, before any work is done."""
    from .export import ExportError
    from .runtime import resolve_backend

    try:
        resolve_backend(backend, device)
    except (ValueError, ExportError) as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lenet5``."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="lenet5", description="Train, evaluate and use LeNet-5 on MNIST."
    )
    parser.add_argument("--version", action="version", version=f"lenet5 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # --debug also works after the command (lenet5 train --debug ...).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser(
        "train",
        parents=[common],
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
    train.add_argument(
        "--quiet",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="no log lines or progress bar (--no-quiet undoes it on --resume)",
    )
    train.add_argument(
        "--plot",
        action="store_true",
        help="write PNG plots into the output folder (needs matplotlib: lenet5[plot])",
    )
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate", parents=[common], help="evaluate weights on the test set of their dataset"
    )
    _data_flags(ev)
    _weights_flag(ev)
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    ev.add_argument("--batch-size", type=int, default=2048, help="images per forward pass")
    _backend_flag(ev)
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write confusion-matrix and misclassified-digit PNGs into DIR (lenet5[plot])",
    )
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        parents=[common],
        help="classify image files",
        description="Classify pictures: PNG, JPEG, BMP..., any size, colour or greyscale, "
        "dark-on-light or light-on-dark. Each is turned into an MNIST-like 28x28 input the "
        "way MNIST was made (see lenet5.preprocess).",
    )
    pr.add_argument(
        "inputs", nargs="+", metavar="IMAGE|DIR|GLOB", help="image files, folders or globs"
    )
    _weights_flag(pr)
    pr.add_argument("--top-k", type=int, default=3, help="how many classes to list (3)")
    pr.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    pr.add_argument("--device", default="cpu", help="cpu, cuda or auto (cpu)")
    pr.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    _backend_flag(pr)
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser(
        "export",
        parents=[common],
        help="export weights to TorchScript or ONNX",
        description="Export a model with a dynamic batch dimension; the file is checked "
        "against the eager model before it is put in place.",
    )
    ex.add_argument("--format", required=True, choices=("torchscript", "onnx"))
    ex.add_argument("--out", type=Path, required=True, help="the file to write")
    _weights_flag(ex)
    ex.set_defaults(func=cmd_export)

    info = sub.add_parser(
        "info", parents=[common], help="versions, devices, and where data and weights are found"
    )
    info.add_argument("--data-dir", type=Path, help="folder to check for data")
    info.set_defaults(func=cmd_info)
    return parser


# ----------------------------------------------------------------------- train


def _config_from_args(args: argparse.Namespace, base: dict[str, Any] | None) -> Any:
    from .training import TrainConfig
    from .training.config import RECIPES

    values: dict[str, Any] = dict(base or {})
    if args.recipe is not None:
        if args.recipe not in RECIPES:
            raise UsageError(f"unknown recipe {args.recipe!r}; choose one of {', '.join(RECIPES)}")
        values.update(RECIPES[args.recipe])
    for name in _CONFIG_FLAGS:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    if args.quiet is not None:
        values["verbose"] = not args.quiet
    return TrainConfig.from_kwargs(values)


def cmd_train(args: argparse.Namespace) -> int:
    """``lenet5 train``."""
    from ._io import atomic_write_text
    from .data import load_dataset
    from .devices import resolve_device
    from .model import LeNet5
    from .training import Checkpoint, CSVLogger, Trainer, UnknownCallbackError
    from .training.checkpoint import find_checkpoint
    from .training.distributed import DistributedError, is_main_process, resolve_strategy

    base: dict[str, Any] = {}
    if args.resume is not None:
        checkpoint = find_checkpoint(args.resume)  # fails early with a clear message
        # The run folder: the one given, or the one above checkpoints/epoch-NNNN.
        run = next(
            (
                p
                for p in (args.resume, *checkpoint.parents[:2])
                if (p / "train_config.json").is_file()
            ),
            args.resume,
        )
        base = _read_run_config(run / "train_config.json")
        out = args.out or run
    else:
        checkpoint = None
    # The dataset belongs to the run: a resumed run keeps it unless told otherwise.
    saved_dataset = base.pop("dataset", None)
    dataset = args.dataset or saved_dataset or "mnist"
    if args.resume is None:
        out = args.out or Path("runs") / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
            raise UsageError(
                f"{out} already holds a run's checkpoints; continue it with --resume {out}, "
                "or choose another --out"
            )
    try:
        config = _config_from_args(args, base)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    names = [n.strip() for n in args.callbacks.split(",") if n.strip()]
    if args.plot:
        from .plotting import require_matplotlib

        require_matplotlib()  # fail before training, not after
    callbacks: list[Any] = [
        CSVLogger(out / "metrics.csv"),
        Checkpoint(out / "checkpoints", every=args.checkpoint_every),
        *names,
    ]
    try:
        trainer = Trainer(callbacks=callbacks, config=config)
    except UnknownCallbackError as exc:  # a typo on the command line; a broken plugin is not
        raise UsageError(str(exc)) from exc
    # Fail before anything is loaded or written.
    resolve_device(config.device)
    try:
        resolve_strategy(config.strategy)
    except DistributedError as exc:
        raise UsageError(str(exc)) from None
    train_set = load_dataset(dataset, args.data_dir, split="train", download=args.download)
    test_set = load_dataset(dataset, args.data_dir, split="test", download=False)
    # Under torchrun every process runs this command; only rank 0 writes and prints.
    main_process = is_main_process()
    val = None if config.val_split else test_set
    if main_process:
        _check_writable(out)
        record = {"dataset": dataset, **config.to_dict()}
        atomic_write_text(out / "train_config.json", json.dumps(record, indent=2) + "\n")
    if config.verbose and main_process:
        where = "the test set" if val is not None else f"{config.val_split:,} held-out images"
        print(
            f"Training LeNet-5 on {dataset} ({len(train_set) - config.val_split:,} images), "
            "validating on "
            f"{where}; output in {out}",
            flush=True,
        )
    with _stop_on_ctrl_c(trainer):
        state = trainer.fit(train_set, val, resume=checkpoint)
    if state.stop_reason == _CTRL_C:
        resume = f"lenet5 train --resume {_quote(out)}"
        if args.data_dir is not None:
            resume += f" --data-dir {_quote(args.data_dir)}"
        print(
            f"\nInterrupted at epoch {state.epoch}, batch {state.batch_in_epoch} of "
            f"{state.steps_per_epoch}; checkpoint saved. Resume with:\n  {resume}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if not main_process:
        return EXIT_OK
    model = trainer.model
    assert isinstance(model, LeNet5)
    result = trainer.evaluate(test_set)
    model.save_pretrained(
        out,
        metadata={
            "dataset": dataset,
            "test_accuracy": f"{result.accuracy:.2f}",
            "mean": repr(train_set.mean),
            "std": repr(train_set.std),
            "classes": json.dumps(list(train_set.classes)),
            "train_config": json.dumps(config.to_dict()),
        },
    )
    summary = {
        "dataset": dataset,
        "epochs_run": state.epoch,
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "history": state.history,
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    if args.plot:
        from .plotting import plot_confusion_matrix, plot_history, plot_misclassified

        plot_history(state.history, out / "training_curves.png")
        plot_confusion_matrix(result.confusion, test_set.classes, out / "confusion_matrix.png")
        plot_misclassified(
            test_set.images,
            test_set.labels,
            result.predictions,
            test_set.classes,
            out / "misclassified.png",
        )
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    if config.verbose:
        _print_summary(state, result, out, plots=args.plot)
    return EXIT_OK


_CTRL_C = "interrupted (Ctrl-C)"


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


def _print_summary(state: Any, result: Any, out: Path, *, plots: bool) -> None:
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
        f"  weights         {out / 'model.safetensors'}",
        f"  metrics         {out / 'metrics.csv'}",
    ]
    if plots:
        lines.append(
            f"  plots           {out}/{{training_curves,confusion_matrix,misclassified}}.png"
        )
    lines.append(f"  load with       LeNet5.from_pretrained({str(out)!r})")
    print("\n".join(lines))


def _read_run_config(path: Path) -> dict[str, Any]:
    """The settings a run folder recorded (empty if it recorded none)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read the run's settings {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object of training settings")
    return data


def _device(spec: str) -> Any:
    """``--device`` as a torch device: a malformed name is a usage error, absent CUDA is not."""
    import torch

    from .devices import resolve_device

    try:
        torch.device(spec) if spec != "auto" else None
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    return resolve_device(spec)


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


def _load_model(weights: str, device: Any) -> Any:
    from .model import LeNet5

    return LeNet5.from_pretrained(weights, map_location=device)


def _weights_dataset(weights: str) -> str:
    """The dataset the weights were trained on, from their metadata (MNIST if unknown)."""
    from .weights import registry, resolve_pretrained

    if weights in registry():
        return registry()[weights].dataset
    return resolve_pretrained(weights).metadata.get("dataset", "mnist")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``lenet5 evaluate``."""
    from .data import load_dataset
    from .inference import evaluate

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.plot is not None:
        from .plotting import require_matplotlib

        require_matplotlib()
    device = _device(args.device)
    _check_backend(args.backend, device)
    model = _load_model(args.weights, device)
    dataset = args.dataset or _weights_dataset(args.weights)
    test_set = load_dataset(dataset, args.data_dir, split="test", download=args.download)
    result = evaluate(model, test_set, batch_size=args.batch_size, backend=args.backend)
    if args.plot is not None:
        from .plotting import plot_confusion_matrix, plot_misclassified

        _check_writable(args.plot)
        plot_confusion_matrix(
            result.confusion, test_set.classes, args.plot / "confusion_matrix.png"
        )
        plot_misclassified(
            test_set.images,
            test_set.labels,
            result.predictions,
            test_set.classes,
            args.plot / "misclassified.png",
        )
    if args.json:
        payload = {
            "weights": str(args.weights),
            "dataset": dataset,
            "test_accuracy": result.accuracy,
            "test_loss": result.loss,
            "correct": result.correct,
            "total": result.total,
            "per_class_accuracy": dict(
                zip(test_set.classes, result.per_class_accuracy, strict=True)
            ),
            "confusion_matrix": result.confusion.tolist(),
        }
        print(json.dumps(payload, indent=2))
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


# --------------------------------------------------------------------- predict


def _expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs, in the order given."""
    import glob

    from .preprocess import IMAGE_SUFFIXES, ImageError

    paths: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise ImageError(
                    f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}); give image files "
                    "or another folder"
                )
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise ImageError(f"no files match {item!r}")
            paths.extend(matches)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return paths


def cmd_predict(args: argparse.Namespace) -> int:
    """``lenet5 predict``."""
    from .predict import predict_files

    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    paths = _expand_inputs(args.inputs)
    device = _device(args.device)
    _check_backend(args.backend, device)
    results, failures = predict_files(
        paths,
        weights=args.weights,
        top_k=args.top_k,
        device=device,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    for path, message in failures:
        print(f"lenet5 predict: error: {path}: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            others = ", ".join(f"{c.label} {100 * c.probability:.2f}%" for c in r.top_k)
            print(
                f"{r.path}: {r.label} ({100 * r.probability:.2f}%)   top-{len(r.top_k)}: {others}"
            )
    return EXIT_FAILURE if failures else EXIT_OK


# ---------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """``lenet5 export``."""
    from .export import export_model

    if args.out.is_dir():
        raise UsageError(f"--out must be a file name, but {args.out} is a folder")
    model = _load_model(args.weights, "cpu")
    path = export_model(model, args.out, format=args.format)
    print(f"Wrote {path} ({args.format}, dynamic batch; outputs checked against the model)")
    return EXIT_OK


# ------------------------------------------------------------------------ info


def cmd_info(args: argparse.Namespace) -> int:
    """``lenet5 info``."""
    import platform

    import torch

    from . import weights
    from ._version import __version__
    from .data import DATA_DIR_ENV, DataError, find_data_dir
    from .training.plugins import available_callbacks

    print(f"lenet5 {__version__} (Python {platform.python_version()}, {platform.platform()})")
    cuda = torch.cuda.is_available()
    print(
        f"torch {torch.__version__}; CUDA available: {cuda}"
        + (f" ({torch.cuda.get_device_name(0)})" if cuda else "")
    )
    print(f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV, '(not set)')}")
    for name in ("mnist", "fashion-mnist"):
        try:
            where = str(find_data_dir(args.data_dir, name))
        except DataError as exc:
            where = f"not found ({exc})"
        print(f"{name} data: {where}")
    for name, entry in weights.registry().items():
        print(f"weights {name}: {entry.path} ({entry.dataset}, {entry.test_accuracy:.2f}%)")
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
        return EXIT_FAILURE
    return EXIT_OK
