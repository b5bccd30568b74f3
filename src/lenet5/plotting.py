"""Figures of training and evaluation, as PNG files (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_file

__all__ = [
    "PlotError",
    "plot_confusion_matrix",
    "plot_history",
    "plot_misclassified",
    "require_matplotlib",
]


class PlotError(RuntimeError):
    """matplotlib is missing, or a figure cannot be made."""


def require_matplotlib() -> Any:
    """Import matplotlib with a non-interactive backend.

    Raises:
        PlotError: Naming the extra to install when matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError:
        raise PlotError(
            "plots need matplotlib: pip install 'lenet5[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def plot_history(history: Sequence[dict[str, float]], path: str | os.PathLike[str]) -> Path:
    """Training loss per epoch and, where measured, validation accuracy.

    Args:
        history: One metrics dict per epoch (``TrainState.history``).
        path: The PNG file to write.
    """
    plt = require_matplotlib()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = list(range(1, len(history) + 1))
    ax_loss.plot(epochs, [h.get("loss", float("nan")) for h in history], label="training loss")
    val = [(e, h["val_loss"]) for e, h in zip(epochs, history, strict=True) if "val_loss" in h]
    if val:
        ax_loss.plot(*zip(*val, strict=True), "o-", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    acc = [
        (e, h["val_accuracy"]) for e, h in zip(epochs, history, strict=True) if "val_accuracy" in h
    ]
    if acc:
        ax_acc.plot(*zip(*acc, strict=True), "o-", color="tab:green")
        for e, a in acc:
            ax_acc.annotate(
                f"{a:.2f}%",
                (e, a),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.grid(alpha=0.3)
    fig.suptitle("LeNet-5 training")
    return _save(fig, path)


def plot_confusion_matrix(
    confusion: torch.Tensor, classes: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """The confusion matrix (rows: true class, columns: predicted), counts in each cell."""
    plt = require_matplotlib()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    data = confusion.double()
    # Log colour scale: the diagonal dwarfs the errors otherwise.
    ax.imshow((data + 1).log().numpy(), cmap="Blues")
    for r in range(n):
        for c in range(n):
            value = int(confusion[r, c])
            if value:
                colour = "white" if r == c else "black"
                ax.text(c, r, str(value), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(
        range(n), labels=list(classes), rotation=45 if n > 10 or max(map(len, classes)) > 2 else 0
    )
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(confusion.sum())
    ax.set_title(f"Confusion matrix ({int(confusion.diagonal().sum()):,}/{total:,} correct)")
    return _save(fig, path)


def plot_misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    limit: int = 64,
) -> Path:
    """A grid of misclassified images, each titled ``true -> predicted``.

    Args:
        images: ``uint8`` images ``(N, H, W)``.
        labels: True labels ``(N,)``.
        predictions: Predicted labels ``(N,)``.
        classes: Class names.
        path: The PNG file to write.
        limit: At most this many images.
    """
    plt = require_matplotlib()
    wrong = torch.nonzero(labels.cpu() != predictions.cpu()).flatten()[:limit]
    count = max(int(wrong.numel()), 1)
    cols = min(8, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong.tolist(), strict=False):
        ax.imshow(images[index].cpu().numpy(), cmap="gray")
        true, pred = classes[int(labels[index])], classes[int(predictions[index])]
        ax.set_title(f"{true} -> {pred}", fontsize=8, color="tab:red")
    if wrong.numel() == 0:
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center")
    fig.suptitle(f"Misclassified ({int((labels.cpu() != predictions.cpu()).sum())} in all)")
    return _save(fig, path)
