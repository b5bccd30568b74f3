"""What several commands do the same way: devices, backends, weights, plots.

Everything heavy is imported inside the functions, which run after the arguments are
checked.
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..devices import is_device_spec, is_meta
from ._errors import UsageError

__all__ = [
    "PLOT_NAMES",
    "check_backend",
    "check_device",
    "check_output_folder",
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
    if is_meta(spec):
        raise UsageError("--device meta holds no data and cannot run a model; use cpu or cuda")
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


def check_output_folder(folder: Path, flag: str) -> None:
    """Check, creating nothing, that ``folder`` can be created and written to.

    Raises:
        UsageError: If ``folder`` is a file.
        OSError: If the nearest folder that exists above it cannot be written to, naming
            both and the flag that chose it.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder} is a file, not a folder")
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    cause = None
    if not existing.is_dir():
        cause = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only(existing) else errno.EACCES
        cause = f"{existing}: {os.strerror(code)}"
    if cause is not None:
        raise OSError(
            f"output folder {folder} is not writable ({cause}); choose another with {flag}"
        )


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def ensure_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` and check that files can be written in it (before hours of work
    whose results would have nowhere to go).

    Raises:
        OSError: Naming the folder, the cause and the flag that chose it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".lenet5-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        cause = exc.strerror or type(exc).__name__
        raise OSError(
            f"output folder {folder} is not writable ({cause}); choose another with {flag}"
        ) from None


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
