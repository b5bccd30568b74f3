"""``lenet5 evaluate``: accuracy, loss, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._io import dumps_json
from ._common import (
    check_backend,
    check_device,
    check_output_folder,
    ensure_writable,
    load_model,
    weights_dataset,
    write_plots,
)
from ._errors import EXIT_OK, UsageError, doing
from ._parser import add_backend_flag, add_data_flags, add_device_flag, add_weights_flag

__all__ = ["register"]


def register(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``lenet5 evaluate`` to the sub-commands."""
    parser = commands.add_parser(
        "evaluate",
        parents=parents,
        help="evaluate weights on the test set of their dataset",
        description="Evaluate weights on the test split of their dataset: accuracy, loss, "
        "per-class accuracy and the confusion matrix.",
    )
    add_data_flags(parser, dataset_help="whose test split to use (default: the weights' own)")
    add_weights_flag(parser)
    add_device_flag(parser, default="auto")
    parser.add_argument(
        "--batch-size", type=int, default=2048, metavar="N", help="images per forward pass"
    )
    add_backend_flag(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write confusion-matrix and misclassified-digit PNGs into DIR (lenet5[plot])",
    )
    parser.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``lenet5 evaluate``."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_device(args.device)
    if args.plot is not None:
        check_output_folder(args.plot, "--plot")
        from ..plotting import require_matplotlib

        require_matplotlib()
    from ..data import load_dataset
    from ..devices import resolve_device
    from ..inference import evaluate

    device = resolve_device(args.device)
    check_backend(args.backend, device)
    with doing(f"loading the weights {args.weights}"):
        model = load_model(args.weights, device)
        dataset = args.dataset or weights_dataset(args.weights)
    where = args.data_dir if args.data_dir is not None else "$LENET5_DATA_DIR"
    with doing(f"loading {dataset} from {where}"):
        test_set = load_dataset(dataset, args.data_dir, split="test", download=args.download)
    result = evaluate(model, test_set, batch_size=args.batch_size, backend=args.backend)
    if args.plot is not None:
        ensure_writable(args.plot, "--plot")
        with doing(f"writing the plots into {args.plot}"):
            write_plots(args.plot, result, test_set)
    if args.json:
        print(dumps_json(_as_json(args.weights, dataset, result, test_set.classes), indent=2))
    else:
        _print_report(result, test_set.classes)
    return EXIT_OK


def _as_json(weights: str, dataset: str, result: Any, classes: Any) -> dict[str, Any]:
    return {
        "weights": str(weights),
        "dataset": dataset,
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "correct": result.correct,
        "total": result.total,
        "per_class_accuracy": dict(zip(classes, result.per_class_accuracy, strict=True)),
        "confusion_matrix": result.confusion.tolist(),
    }


def _print_report(result: Any, classes: Any) -> None:
    print(f"Final | Test Accuracy: {result.accuracy:.2f}%")
    print(f"Test loss: {result.loss:.4f} ({result.correct:,}/{result.total:,} correct)")
    print("\nPer-class accuracy:")
    for cls, acc in zip(classes, result.per_class_accuracy, strict=True):
        print(f"  {cls:>12}: {acc:6.2f}%")
    print("\nConfusion matrix (rows: true class, columns: predicted):")
    n = len(classes)
    width = max(5, len(str(int(result.confusion.max()))) + 1)
    print("      " + "".join(f"{c:>{width}}" for c in range(n)))
    for r in range(n):
        print(f"  {r:>3} " + "".join(f"{int(v):>{width}}" for v in result.confusion[r]))
