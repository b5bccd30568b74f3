"""What several commands do the same way: devices, backends, weights, plots.

Everything heavy is imported inside the functions, which run after the arguments are
checked.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..devices import is_device_spec
from ._errors import UsageError

__all__ = [
    "PLOT_NAMES",
    "check_backend",
    "check_device",
    "ensure_writable",
    "load_model",
    "quote",
    "weights_dataset",
    "write_plots",
]

#: The pictures ``--plot`` writes (``.png``): the history only after training.
PLOT_NAMES = ("training_curves", "confusion_matrix", "misclassified")


def check_device(spec: str) -> str:
    """``--device``'s spelling, checked without torch: a malformed name is a usage error
    (an absent CUDA is not: :func:`~lenet5.devices.resolve_device` reports that later)."""
    if not is_device_spec(spec):
        raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    return spec


def check_backend(backend: str, device: Any) -> None:
    """``--backend`` against ``--device`` and what is installed, before any work is done."""
    from ..export import ExportError
    from ..runtime import resolve_backend

    try:
        resolve_backend(backend, device)
    except (ValueError, ExportError) as exc:
        raise UsageError(str(exc)) from None


def load_model(weights: str, device: Any) -> Any:
    """The model that ``--weights`` names."""
    from ..model import LeNet5

    return LeNet5.from_pretrained(weights, map_location=device)


def weights_dataset(weights: str) -> str:
    """The dataset the weights were trained on, from their metadata (MNIST if unknown)."""
    from ..weights import registry, resolve_pretrained

    if weights in registry():
        return registry()[weights].dataset
    return resolve_pretrained(weights).metadata.get("dataset", "mnist")


def ensure_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` and check that it can be written to.

    Raises:
        OSError: Naming the folder and the flag that chose it.
    """
    from ..training.run import ensure_writable

    try:
        ensure_writable(folder)
    except OSError as exc:
        raise OSError(f"{exc}; choose another with {flag}") from None


def write_plots(
    folder: Path, result: Any, test_set: Any, *, history: Sequence[Any] | None = None
) -> None:
    """The ``--plot`` pictures: the training curves (given a history), the confusion matrix
    and the misclassified test images."""
    from ..plotting import plot_confusion_matrix, plot_history, plot_misclassified

    curves, confusion, misclassified = (folder / f"{name}.png" for name in PLOT_NAMES)
    if history is not None:
        plot_history(list(history), curves)
    plot_confusion_matrix(result.confusion, test_set.classes, confusion)
    plot_misclassified(
        test_set.images, test_set.labels, result.predictions, test_set.classes, misclassified
    )


def quote(path: Path) -> str:
    """``path`` as the shell needs it typed."""
    return shlex.quote(str(path))
