"""Figures of training and evaluation, as PNG files (needs the ``plot`` extra: matplotlib).

Each ``plot_*`` function writes the figure that a private ``_*_figure`` function builds (for
a page about 800 pixels wide; the same for 1 epoch or 100, 2 classes or 10, 1 error or 64).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._io import atomic_file

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PlotError",
    "plot_confusion_matrix",
    "plot_history",
    "plot_misclassified",
    "require_matplotlib",
]

#: Resolution of the PNG files (a 9-inch figure is 1,080 pixels wide).
DPI = 120
#: At most this many markers on one line; longer series mark every k-th point.
MAX_MARKERS = 34
#: The accuracy axis spans at least this many percentage points.
MIN_ACCURACY_SPAN = 0.5
ARROW = "\u2192"
#: Line colours, in the order of :func:`_curves` (one set, one colour in both panels).
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


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


def _new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (nothing to close), drawn by Agg, in constrained layout."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return Path(path)


def plot_history(history: Sequence[Mapping[str, float]], path: str | os.PathLike[str]) -> Path:
    """Training curves: the loss per epoch (training, and validation where measured) and
    the validation accuracy (the training accuracy when nothing was validated). Each value
    is a marker (every k-th of a long series), the last ones are in the legends.

    Args:
        history: One metrics dict per epoch (``TrainState.history``: ``loss``,
            ``accuracy``, ``val_loss``, ``val_accuracy``, ``val_<name>_...``).
        path: The PNG file to write.
    """
    return _save(_history_figure(history), path)


def _series(history: Sequence[Mapping[str, float]], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` for every epoch whose ``key`` is a finite number."""
    return [
        (epoch, float(metrics[key]))
        for epoch, metrics in enumerate(history, start=1)
        if key in metrics and math.isfinite(float(metrics[key]))
    ]


def _curves(history: Sequence[Mapping[str, float]]) -> dict[str, str]:
    """Legend label -> key prefix of every set: ``training`` (``loss``...), ``validation``
    (``val_loss``...) and each named validation set (``val_<name>_loss``...); a named set
    that repeats ``val_*`` (the first set) lends it its name instead of a second line."""
    keys = {k for m in history for k in m}
    measured = (k for k in keys if k.startswith("val_") and k.endswith(("_loss", "_accuracy")))
    names = sorted({k[4:].rsplit("_", 1)[0] for k in measured if k.count("_") > 1})
    curves = {"training": ""}
    if {"val_loss", "val_accuracy"} & keys:
        curves["validation"] = "val_"
    for name in names:
        prefix = f"val_{name}_"
        same = all(_series(history, prefix + k) == _series(history, "val_" + k)
                   for k in ("loss", "accuracy"))  # fmt: skip
        if same and curves.get("validation") == "val_":
            del curves["validation"]
        curves[f"validation ({name})"] = "val_" if same else prefix
    return curves


def _line(ax: Axes, points: list[tuple[int, float]], label: str, colour: str) -> None:
    """``points`` as a line with a marker on each, up to :data:`MAX_MARKERS` of them; a
    longer series marks every 2nd, 5th, 10th... epoch, and its first and last."""
    xs, ys = zip(*points, strict=True)
    n = len(points)
    every: Any = 1
    if n > MAX_MARKERS:
        step = next(s for s in (2, 5, 10, 20, 50, 100, 10**9) if n / s <= MAX_MARKERS)
        every = [i for i, e in enumerate(xs) if e % step == 0 or i in (0, n - 1)]
    size = 6.0 if n <= 12 else 4.5 if n <= MAX_MARKERS else 4.0
    ax.plot(xs, ys, label=label, color=colour, marker="o", markersize=size, markevery=every,
            lw=1.5 if n > 1 else 0)  # fmt: skip


def _legend_below(ax: Axes, fig: Figure) -> None:
    """The legend under the axes (under its epoch label): it never hides a point."""
    from matplotlib.transforms import offset_copy

    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
              fontsize=9, frameon=False, borderaxespad=0)  # fmt: skip


def _epoch_axis(ax: Axes, epochs: int) -> None:
    """Whole epochs from 1 to ``epochs``, padded so that end points clear the frame."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    pad = max(0.5, 0.03 * epochs)
    ax.set_xlim(1 - pad, epochs + pad)
    if epochs <= 12:
        ax.xaxis.set_major_locator(FixedLocator(list(range(1, epochs + 1))))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=3))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _loss_axes(fig: Figure, ax: Axes, history: Sequence[Mapping[str, float]]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    values = []
    for i, (label, prefix) in enumerate(_curves(history).items()):
        points = _series(history, prefix + "loss")
        if points:
            _line(ax, points, f"{label}: last {points[-1][1]:.3g}", COLOURS[i % len(COLOURS)])
            values += [v for _, v in points]
    if values and min(values) > 0 and max(values) / min(values) >= 5:
        ax.set_yscale("log")
        decades = math.log10(max(values) / min(values))
        subs = (1.0, 2.0, 3.0, 5.0) if decades < 1.2 else (1.0, 2.0, 5.0) if decades < 2.5 else None
        ax.yaxis.set_major_locator(LogLocator(subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title("Loss (log scale)")
    else:
        ax.set_ylim(bottom=0, top=1.1 * max(values, default=1.0))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
        ax.set_title("Loss")
    if values:
        _legend_below(ax, fig)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_ylabel("cross-entropy per image")


def _accuracy_limits(values: Sequence[float]) -> tuple[float, float, list[float], int]:
    """Limits of the accuracy axis around ``values`` (percent), with room above and below
    every point; its ticks, and the decimals that write them (at most 2)."""
    from matplotlib.ticker import MaxNLocator

    lo, hi = min(values), max(values)
    span = max(hi - lo, MIN_ACCURACY_SPAN)
    low, high = (lo + hi) / 2 - 0.6 * span, (lo + hi) / 2 + 0.6 * span
    top = max(100.0, hi) + 0.1 * span
    if high > top:  # no room wasted above 100%: the span moves down
        low, high = low - (high - top), top
    low = max(low, 0.0) if lo >= 0 else low
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 5, 10]).tick_values(low, high)
    step = float(ticks[1] - ticks[0])
    decimals = min(2, max(0, -math.floor(math.log10(step) + 1e-9)))
    inside = [float(t) for t in ticks if low <= t <= min(high, 100.0)]
    return low, high, inside, decimals


def _accuracy_axes(fig: Figure, ax: Axes, history: Sequence[Mapping[str, float]]) -> None:
    from matplotlib.ticker import FixedLocator, PercentFormatter

    curves = _curves(history)
    lines = {label: _series(history, p + "accuracy") for label, p in curves.items() if p}
    title = "Validation accuracy"
    if not any(lines.values()):
        train = _series(history, "accuracy") or _series(history, "train_accuracy")
        lines, title = {"training": train}, "Training accuracy" if train else "Accuracy"
    values = [v for points in lines.values() for _, v in points]
    rings = []
    for label, points in lines.items():
        if not points:
            continue
        colour = COLOURS[list(curves).index(label) % len(COLOURS)]
        last, (best_epoch, best) = points[-1][1], max(points, key=lambda p: p[1])
        text = f"{label}: last {last:.2f}%" + (
            f", best {best:.2f}% (epoch {best_epoch})" if len(points) > 1 else ""
        )
        _line(ax, points, text, colour)
        if len(points) > 1:
            rings.append((best_epoch, best, colour))
    for i, (epoch, best, colour) in enumerate(rings):
        ax.plot([epoch], [best], ls="none", marker="o", ms=12, mfc="none", mec=colour,
                label="_nolegend_" if i else "best")  # fmt: skip
    if values:
        low, high, ticks, decimals = _accuracy_limits(values)
        ax.set_ylim(low, high)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=decimals))
        _legend_below(ax, fig)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title(title)
    ax.set_ylabel("accuracy")


def _history_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """The figure :func:`plot_history` writes."""
    fig = _new_figure(9.0, 4.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = len(history)
    for ax in (ax_loss, ax_acc):
        _epoch_axis(ax, max(epochs, 1))
    _loss_axes(fig, ax_loss, history)
    _accuracy_axes(fig, ax_acc, history)
    fig.suptitle(f"LeNet-5 training, {epochs} epoch{'' if epochs == 1 else 's'}")
    return fig


def plot_confusion_matrix(
    confusion: torch.Tensor, classes: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """The confusion matrix: rows are the true classes, columns the predicted ones, with
    the count in every non-empty cell; the colours are on a log scale (its colour bar
    says so) so that a few errors show beside the diagonal.

    Args:
        confusion: ``(C, C)`` counts, ``confusion[true, predicted]``.
        classes: The ``C`` class names.
        path: The PNG file to write.
    """
    return _save(_confusion_figure(confusion, classes), path)


def _text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever contrasts more with a cell of colour ``rgba`` (0.179 is
    the relative luminance at which both have the same WCAG contrast ratio)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.179 else "white"


def _confusion_cells(ax: Axes, counts: torch.Tensor, fontsize: float) -> Any:
    """The cells (log colour scale, empty cells white) and their counts; the image."""
    import matplotlib
    import numpy as np
    from matplotlib.colors import ListedColormap, LogNorm

    # Blues without its near-white end: a cell of 1 stays distinct from an empty one.
    blues = matplotlib.colormaps["Blues"](np.linspace(0.12, 1.0, 256))
    cmap = ListedColormap(blues).with_extremes(bad="white")
    data = counts.double().masked_fill(counts == 0, float("nan")).numpy()
    norm = LogNorm(vmin=1, vmax=max(int(counts.max()) if counts.numel() else 1, 10))
    image = ax.imshow(data, cmap=cmap, norm=norm)
    for r, row in enumerate(counts.tolist()):
        for c, value in enumerate(row):
            if value:
                colour = _text_colour(cmap(norm(value)))
                ax.text(c, r, f"{value}", ha="center", va="center", size=fontsize, color=colour)
    return image


def _confusion_figure(confusion: torch.Tensor, classes: Sequence[str]) -> Figure:
    """The figure :func:`plot_confusion_matrix` writes."""
    from matplotlib.ticker import FuncFormatter

    n, counts = len(classes), confusion.detach().cpu().long()
    cell = 0.55 if n > 4 else 1.1
    longest = max(map(len, classes), default=0) * 0.075  # inches, at 10 points
    slanted = longest > cell  # then written at a slant, ending under their column
    # Room to spare both ways (the matrix is square; the PNG is cropped to what is drawn).
    height = max(3.2, 1.5 + cell * n + 0.7 * longest * slanted)
    fig = _new_figure(max(4.0, 3.0 + cell * n + longest), height)
    ax = fig.subplots()
    digits = len(str(int(counts.max()))) if counts.numel() else 1  # smaller from 5 digits
    size = (12 if n <= 4 else 9.5 if n <= 12 else 8) - max(digits - 4, 0)
    image = _confusion_cells(ax, counts, size)
    ax.set_xticks(range(n), labels=list(classes), rotation=40 if slanted else 0,
                  ha="right" if slanted else "center", rotation_mode="anchor")  # fmt: skip
    ax.set_yticks(range(n), labels=list(classes))
    ax.set(xlabel="predicted class", ylabel="true class")
    # In the axes' own coordinates: exactly as tall as the matrix.
    bar = fig.colorbar(image, cax=ax.inset_axes((1.04, 0.0, 0.05, 1.0)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    bar.set_label("images (log scale; blank cell: 0)")
    total, correct = int(counts.sum()), int(counts.diagonal().sum())
    share = f"{correct:,} of {total:,} correct" + (f" ({correct / total:.2%})" if total else "")
    ax.set_title(f"Confusion matrix{': ' if n > 4 else chr(10)}{share}")
    return fig


def plot_misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    limit: int = 64,
    confidences: torch.Tensor | None = None,
) -> Path:
    """A grid of the first misclassified images, each titled ``true → predicted``.

    Args:
        images: ``uint8`` images ``(N, H, W)``.
        labels: True labels ``(N,)``.
        predictions: Predicted labels ``(N,)``.
        classes: Class names.
        path: The PNG file to write.
        limit: At most this many images.
        confidences: Optional: the model's probability of each prediction ``(N,)``, or
            its class probabilities ``(N, C)``; each title then ends with it in percent.
    """
    figure = _misclassified_figure(images, labels, predictions, classes, limit, confidences)
    return _save(figure, path)


def _misclassified_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    limit: int = 64,
    confidences: torch.Tensor | None = None,
) -> Figure:
    """The figure :func:`plot_misclassified` writes."""
    labels, predictions = labels.cpu(), predictions.cpu()
    all_wrong = torch.nonzero(labels != predictions).flatten()
    wrong, total = all_wrong[: max(limit, 0)].tolist(), int(all_wrong.numel())
    probs = None if confidences is None else confidences.detach().cpu().double()
    if probs is not None and probs.dim() == 2:  # the class probabilities (N, C)
        probs = probs.gather(1, predictions.long().view(-1, 1)).flatten()
    confidence: list[float] = [] if probs is None else probs.tolist()
    # Long class names ("T-shirt/top") put the prediction on a second line, in every tile.
    two_lines = max(map(len, classes), default=0) > 5
    cols, width = min(8, max(len(wrong), 1)), 1.35 if two_lines else 1.1
    rows = -(-max(len(wrong), 1) // cols)
    fig = _new_figure(max(width * cols, 3.6), (width + 0.3 + 0.15 * two_lines) * rows + 0.55)
    axes = fig.subplots(rows, cols, squeeze=False)
    scale: dict[str, Any] = {"vmin": 0, "vmax": 255} if images.dtype == torch.uint8 else {}
    for ax in axes.flat[len(wrong) :]:
        ax.set_axis_off()
    for ax, index in zip(axes.flat, wrong, strict=False):  # dark on light, thin grey frame
        ax.imshow(images[index].cpu().squeeze().numpy(), cmap="gray_r", **scale)
        ax.set(xticks=[], yticks=[])
        ax.spines[:].set_edgecolor("#c8c8c8")
        title = f"{classes[int(labels[index])]}{chr(10) if two_lines else ' '}{ARROW} "
        title += classes[int(predictions[index])]
        title += f" ({100 * confidence[index]:.0f}%)" if confidence else ""
        ax.set_title(title, fontsize=9 if two_lines else 10, color="#b00020", pad=3,
                     linespacing=1.1)  # fmt: skip
    if not total:
        axes.flat[0].text(0.5, 0.5, "no errors", ha="center", va="center", fontsize=14)
        fig.suptitle("Misclassified images: none")
    else:
        what = f"{total}" if len(wrong) == total else f"{total} (the first {len(wrong)} shown)"
        how = f"true {ARROW} predicted" + (" (confidence)" if confidence else "")
        fig.suptitle(f"Misclassified images: {what}\neach titled {how}", fontsize=11)
    return fig
