"""The figures of ``lenet5.plotting`` read well for 1 epoch and for 100: whole-epoch ticks,
a visible marker for a single point, accuracy ticks with at most two decimals around every
point, no overlapping text, counts that contrast with their cells, ``true → predicted``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from PIL import Image

from lenet5 import ImageSet
from lenet5.plotting import (
    _confusion_figure,
    _history_figure,
    _misclassified_figure,
    _text_colour,
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
)

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
DIGITS = [str(d) for d in range(10)]


def reference_history(epochs: int, val_every: int = 0) -> list[dict[str, float]]:
    """Like the reference recipe: the loss falls from ~0.2 to ~0.005, the validation
    accuracy wanders between 98.5% and 99.0%."""
    history = []
    for e in range(1, epochs + 1):
        loss = 0.2 * e**-1.1 + 0.003 + 0.001 * math.sin(e)
        metrics = {"loss": loss, "accuracy": 100 - 30 * loss, "lr": 1e-3}
        if val_every and e % val_every == 0:
            metrics["val_loss"] = 0.05 + 0.0002 * e + 0.005 * math.sin(2.3 * e)
            metrics["val_accuracy"] = 98.75 + 0.25 * math.sin(1.7 * e)
        history.append(metrics)
    return history


HISTORIES = {
    "1 epoch": reference_history(1, 1),
    "1 epoch, no validation": reference_history(1),
    "2 epochs": reference_history(2, 1),
    "5 epochs": reference_history(5, 1),
    "7 epochs": reference_history(7, 1),
    "100 epochs, validation every 20": reference_history(100, 20),
    "100 epochs, validation every epoch": reference_history(100, 1),
}


def drawn_texts(fig: Figure, monkeypatch: pytest.MonkeyPatch) -> list[Text]:
    """Every non-empty text that drawing the figure really draws (ticks outside the view
    are not drawn, and so not counted)."""
    drawn: list[Text] = []
    draw = Text.draw

    def recording(self: Text, renderer: Any) -> None:
        draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)

    with monkeypatch.context() as patch:
        patch.setattr(Text, "draw", recording)
        fig.canvas.draw()
    return drawn


def outline(text: Text, renderer: Any) -> list[tuple[float, float]]:
    """The corners of the (possibly rotated) rectangle of ``text`` on the canvas: from its
    upright bounding box and its angle, since a slanted label's box is larger than it."""
    box = text.get_window_extent(renderer)
    angle = math.radians(text.get_rotation() % 180)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    if min(cos, sin) < 1e-6 or abs(cos - sin) < 1e-3:
        return [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
    # box.width = w cos + h sin, box.height = w sin + h cos
    w = (box.width * cos - box.height * sin) / (cos**2 - sin**2)
    h = (box.height * cos - box.width * sin) / (cos**2 - sin**2)
    (cx, cy), c, s = (
        ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2),
        math.cos(angle),
        math.sin(angle),
    )
    corners = ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]


def apart(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Whether two convex outlines are separated (by a pixel) along one of their edges."""
    for shape in (a, b):
        for (x0, y0), (x1, y1) in zip(shape, shape[1:] + shape[:1], strict=True):
            nx, ny = y1 - y0, x0 - x1
            norm = math.hypot(nx, ny) or 1.0
            pa = [(x * nx + y * ny) / norm for x, y in a]
            pb = [(x * nx + y * ny) / norm for x, y in b]
            if max(pa) < min(pb) + 1 or max(pb) < min(pa) + 1:
                return True
    return False


def overlapping(texts: list[Text], fig: Figure) -> list[tuple[str, str]]:
    """The pairs of texts that overlap on the canvas (by more than a pixel)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    shapes = [(t.get_text(), outline(t, renderer)) for t in texts]
    return [(a, b) for (a, sa), (b, sb) in combinations(shapes, 2) if not apart(sa, sb)]


def points(line: Line2D) -> list[tuple[float, float]]:
    """The data of a line."""
    data: Any = line.get_xydata()
    return [(float(x), float(y)) for x, y in data]


def accuracy_axes(fig: Figure) -> Any:
    return fig.axes[1]


def tick_labels(ax: Any, axis: str) -> Iterator[str]:
    """The labels of the ticks inside the view of ``axis`` (``"x"`` or ``"y"``)."""
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    for label in labels:
        x, y = label.get_position()
        if low - 1e-9 <= (x if axis == "x" else y) <= high + 1e-9 and label.get_text():
            yield label.get_text()


@pytest.mark.parametrize("epochs", [1, 2, 7, 100])
def test_the_epoch_axis_has_whole_epochs_and_room_around_the_run(epochs: int) -> None:
    fig = _history_figure(reference_history(epochs, 1 if epochs < 100 else 20))
    fig.canvas.draw()
    for ax in fig.axes:
        labels = list(tick_labels(ax, "x"))
        assert len(labels) >= 1
        assert all(re.fullmatch(r"\d+", label) for label in labels), labels
        assert set(map(int, labels)) <= set(range(epochs + 1)), labels
        low, high = ax.get_xlim()
        # Never a 0.96-1.04 axis: at least half an epoch of room on each side.
        assert low <= 0.5
        assert high >= epochs + 0.5
        assert ax.get_xlabel() == "epoch"
    if epochs <= 7:
        assert list(tick_labels(fig.axes[0], "x")) == [str(e) for e in range(1, epochs + 1)]


def test_one_epoch_is_a_visible_marker_in_both_panels() -> None:
    fig = _history_figure(HISTORIES["1 epoch"])
    fig.canvas.draw()
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if len(points(line)) == 1]
        assert lines, ax.get_title()
        for line in lines:
            assert line.get_marker() not in ("None", "", " ", None)
            assert line.get_markersize() >= 5
            x, y = ax.transData.transform(points(line)[0])
            assert ax.bbox.x0 + 20 < x < ax.bbox.x1 - 20
            assert ax.bbox.y0 + 5 < y < ax.bbox.y1 - 5


def test_a_hundred_epochs_thin_the_markers_but_keep_the_ends() -> None:
    fig = _history_figure(HISTORIES["100 epochs, validation every epoch"])
    for ax in fig.axes:
        for line in ax.get_lines():
            if len(points(line)) == 100:
                every = line.get_markevery()
                assert isinstance(every, list)
                assert every[0] == 0
                assert every[-1] == 99
                assert 10 <= len(every) <= 40
    sparse = _history_figure(HISTORIES["100 epochs, validation every 20"])
    validation = [line for line in sparse.axes[1].get_lines() if len(points(line)) == 5]
    assert validation[0].get_markevery() == 1  # five measurements: five markers


@pytest.mark.parametrize(
    "values",
    [[98.72], [98.72, 98.61, 98.55, 98.69, 98.70], [93.93], [99.9, 99.95, 100.0], [11.2, 97.1]],
    ids=["one point", "0.2-point range", "training only", "up to 100%", "wide range"],
)
def test_accuracy_ticks_have_at_most_two_decimals_around_every_point(
    values: list[float],
) -> None:
    key = "accuracy" if values == [93.93] else "val_accuracy"
    history = [{"loss": 0.1, key: v} for v in values]
    fig = _history_figure(history)
    fig.canvas.draw()
    ax = accuracy_axes(fig)
    labels = list(tick_labels(ax, "y"))
    assert len(labels) >= 3, labels
    assert all(re.fullmatch(r"\d{1,3}(\.\d{1,2})?%", label) for label in labels), labels
    assert all(float(label[:-1]) <= 100 for label in labels), labels
    low, high = ax.get_ylim()
    pad = 0.04 * (high - low)
    assert all(low + pad <= v <= high - pad for v in values), (low, high)
    assert high - low <= max(2.0 * (max(values) - min(values)), 1.0)


@pytest.mark.parametrize("name", list(HISTORIES))
def test_training_curves_have_no_overlapping_text_and_say_what_they_show(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fig = _history_figure(HISTORIES[name])
    texts = drawn_texts(fig, monkeypatch)
    assert overlapping(texts, fig) == []
    words = " ".join(t.get_text() for t in texts)
    assert "epoch" in words
    assert "cross-entropy" in words
    loss, accuracy = fig.axes
    legend = loss.get_legend()
    assert legend is not None
    assert accuracy.get_legend() is not None
    if "no validation" not in name:
        entries = [t.get_text() for t in legend.get_texts()]
        assert [e.split(":")[0] for e in entries] == ["training", "validation"]
        assert accuracy.get_title() == "Validation accuracy"
    else:
        assert accuracy.get_title() == "Training accuracy"


def test_named_validation_sets_get_one_line_each_in_the_same_colour_in_both_panels() -> None:
    history = [
        {"loss": 0.2 / e, "val_loss": 0.05, "val_accuracy": 98.5 + e / 10,
         "val_holdout_loss": 0.05, "val_holdout_accuracy": 98.5 + e / 10,
         "val_test_loss": 0.06, "val_test_accuracy": 98.2 + e / 10}
        for e in range(1, 6)
    ]  # fmt: skip
    fig = _history_figure(history)
    styles = []
    for ax in fig.axes:
        labels = [line for line in ax.get_lines() if not str(line.get_label()).startswith("_")]
        styles.append({str(line.get_label()).split(":")[0]: line.get_color() for line in labels})
    assert list(styles[0]) == ["training", "validation (holdout)", "validation (test)"]
    assert set(styles[1]) == {"validation (holdout)", "validation (test)", "best"}
    for label in ("validation (holdout)", "validation (test)"):
        assert styles[0][label] == styles[1][label]


def test_an_empty_history_still_makes_a_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    fig = _history_figure([])
    texts = [t.get_text() for t in drawn_texts(fig, monkeypatch)]
    assert "not measured" in texts


def contrast(a: Any, b: Any) -> float:
    """The WCAG contrast ratio of two colours."""

    def luminance(colour: Any) -> float:
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                   for c in to_rgba(colour)[:3])  # fmt: skip
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def cell_texts(fig: Figure) -> dict[tuple[int, int], Text]:
    ax = fig.axes[0]
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}


def test_confusion_counts_contrast_with_their_cells_whatever_the_diagonal() -> None:
    confusion = torch.tensor([[2, 500, 0], [0, 980, 3], [40, 1, 7]])
    fig = _confusion_figure(confusion, ["a", "b", "c"])
    image = fig.axes[0].get_images()[0]
    texts = cell_texts(fig)
    assert set(texts) == {(0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)}  # no zeros
    for (r, c), text in texts.items():
        assert text.get_text() == str(int(confusion[r, c]))
        cell = image.cmap(image.norm(float(confusion[r, c])))  # type: ignore[arg-type]
        assert contrast(text.get_color(), cell) >= 4.5, (r, c, text.get_color())
    assert texts[0, 1].get_color() == "white"  # a dark cell off the diagonal
    assert texts[0, 0].get_color() == "black"  # a light cell on it
    assert _text_colour(to_rgba("white")) == "black"
    assert _text_colour(to_rgba("navy")) == "white"


@pytest.mark.parametrize("classes", [DIGITS, FASHION, ["even", "odd"]], ids=["10", "fashion", "2"])
def test_confusion_matrix_labels_and_no_overlapping_text(
    classes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = len(classes)
    generator = torch.Generator().manual_seed(0)
    confusion = torch.randint(0, 30, (n, n), generator=generator)
    confusion += torch.diag(torch.randint(800, 1200, (n,), generator=generator))
    fig = _confusion_figure(confusion, classes)
    texts = drawn_texts(fig, monkeypatch)
    assert overlapping(texts, fig) == []
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class"
    assert ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    slanted = {t.get_rotation() != 0 for t in ax.get_xticklabels()}
    assert slanted == {classes is FASHION}
    (bar,) = ax.child_axes
    assert "log scale" in bar.get_ylabel()
    correct = int(confusion.diagonal().sum())
    assert f"{correct:,} of {int(confusion.sum()):,} correct" in ax.get_title()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = fig.bbox
    for text in texts:  # nothing is cut off at the edges of the figure
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0, text.get_text()
        assert extent.x1 <= box.x1 + 1, text.get_text()


def errors(count: int, total: int = 200) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels and predictions with ``count`` errors (every other image first)."""
    images = torch.randint(0, 256, (total, 28, 28), dtype=torch.uint8)
    labels = torch.arange(total) % 10
    predictions = labels.clone()
    wrong = torch.arange(0, 2 * count, 2)
    predictions[wrong] = (labels[wrong] + 3) % 10
    return images, labels, predictions


def tiles(fig: Figure) -> list[Any]:
    return [ax for ax in fig.axes if ax.get_images()]


@pytest.mark.parametrize(("count", "limit"), [(1, 64), (64, 64), (20, 12)])
def test_misclassified_tiles_are_titled_true_to_predicted(
    count: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels, predictions = errors(count)
    fig = _misclassified_figure(images, labels, predictions, DIGITS, limit)
    shown = tiles(fig)
    assert len(shown) == min(count, limit)
    for ax, index in zip(shown, range(0, 2 * count, 2), strict=False):
        assert ax.get_title() == f"{int(labels[index])} → {int(predictions[index])}"
    suptitle = fig.get_suptitle()
    assert "true → predicted" in suptitle
    assert str(count) in suptitle
    assert (f"the first {limit} shown" in suptitle) == (count > limit)
    assert overlapping(drawn_texts(fig, monkeypatch), fig) == []


def test_misclassified_with_confidences_and_long_names(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels, predictions = errors(24)  # three rows of eight
    probabilities = torch.full((len(labels), 10), 0.01)
    probabilities[torch.arange(len(labels)), predictions] = 0.91
    fig = _misclassified_figure(images, labels, predictions, FASHION, confidences=probabilities)
    titles = [ax.get_title() for ax in tiles(fig)]
    assert titles[0] == f"{FASHION[0]}\n→ {FASHION[3]} (91%)"
    assert all(title.endswith("(91%)") for title in titles)
    assert "true → predicted (confidence)" in fig.get_suptitle()
    assert overlapping(drawn_texts(fig, monkeypatch), fig) == []
    one = _misclassified_figure(images, labels, predictions, DIGITS, 1, probabilities[:, 0])
    assert [ax.get_title() for ax in tiles(one)] == ["0 → 3 (1%)"]


def test_no_errors_makes_a_figure_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels, _ = errors(0)
    fig = _misclassified_figure(images, labels, labels.clone(), DIGITS)
    assert tiles(fig) == []
    assert "no errors" in [t.get_text() for t in drawn_texts(fig, monkeypatch)]


def test_each_plot_writes_a_png_for_the_docs_page(tmp_path: Path) -> None:
    images, labels, predictions = errors(16)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    written = {
        "curves": plot_history(HISTORIES["100 epochs, validation every 20"], tmp_path / "c.png"),
        "confusion": plot_confusion_matrix(confusion, DIGITS, tmp_path / "m.png"),
        # The old positional call, without the new keyword arguments.
        "misclassified": plot_misclassified(images, labels, predictions, DIGITS, tmp_path / "w"),
    }
    for name, path in written.items():
        assert path.is_file()
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert 600 <= image.width <= 1400, (name, image.size)
            assert image.height >= 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "m.png", "w"]


def test_markers_are_real_lines_not_invisible_points() -> None:
    # The original bug: a one-epoch history drew a line of one point and no marker.
    fig = _history_figure([{"loss": 0.3}])
    (line,) = [x for x in fig.axes[0].get_children() if isinstance(x, Line2D) and x.get_label()
               == "training: last 0.3"]  # fmt: skip
    assert line.get_marker() == "o"


# ------------------------------------------------------ without validation, without errors


def test_plots_without_validation_or_without_errors(tmp_path: Path, tiny_test: ImageSet) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from lenet5.plotting import plot_history, plot_misclassified

    curves = plot_history([{"loss": 0.9}, {"loss": 0.5}], tmp_path / "curves.png")
    labels = tiny_test.labels[:8]
    grid = plot_misclassified(tiny_test.images[:8], labels, labels.clone(), tiny_test.classes,
                              tmp_path / "wrong.png")  # fmt: skip
    for path in (curves, grid):
        with Image.open(path) as image:
            assert image.width > 100
