"""Sphinx directive ``.. lenet5-zoo::``: the model zoo, generated from the weights registry.

The table (one row per bundled weight set: dataset, test accuracy, mean over five seeds,
mean corruption accuracy, parameters, file size, a link to the recipe) and, under it, one
entry per weight set with the exact command that trained it, its checksum and its notes,
are written from :data:`lenet5.weights.REGISTRY` at build time, so the page cannot drift
from the records the package loads (tests/test_docs_pages.py compares the built page with
the registry).
"""

from __future__ import annotations

import shlex
import statistics
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: How the datasets are named in prose.
_DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
#: The width a command block is wrapped to (continuation lines), so that it never scrolls.
_COMMAND_WIDTH = 76


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def _seed_mean(seeds: tuple[float, ...]) -> str:
    if len(seeds) < 2:
        return "—"
    return f"{statistics.fmean(seeds):.2f}% ± {statistics.stdev(seeds):.2f}"


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.0f} KiB"


def _wrapped_command(command: str) -> list[str]:
    """The command split into ``\\``-continued lines at option boundaries."""
    lines: list[str] = []
    current = ""
    for word in shlex.split(command):
        piece = shlex.quote(word)
        if current and (piece.startswith("--") and len(current) + len(piece) + 12 > _COMMAND_WIDTH):
            lines.append(current + " \\")
            current = "    " + piece
        else:
            current = f"{current} {piece}" if current else piece
    return [*lines, current]


def _table(registry: dict[str, Any], default: str) -> list[str]:
    rows = [
        ".. list-table:: Bundled weight sets (from ``lenet5.weights.REGISTRY``)",
        "   :header-rows: 1",
        "   :class: lenet5-zoo",
        "",
        "   * - Weights",
        "     - Dataset",
        "     - Test accuracy",
        "     - Mean over seeds",
        "     - Robustness (mCA)",
        "     - Parameters",
        "     - File size",
        "     - Recipe",
    ]
    for name, w in registry.items():
        tag = " (``DEFAULT``)" if name == default else ""
        recipe = f":ref:`command <zoo-{name}>`" if w.recipe else "—"
        rows += [
            f"   * - ``{name}``{tag}",
            f"     - {_DATASET_TITLES.get(w.dataset, w.dataset)}",
            f"     - {_percent(w.test_accuracy)}",
            f"     - {_seed_mean(w.seed_accuracies)}",
            f"     - {_percent(w.corruption_accuracy)}",
            f"     - {w.num_params:,}",
            f"     - {_size(w.file_size)}",
            f"     - {recipe}",
        ]
    return rows


def _entry(name: str, w: Any) -> list[str]:
    """One weight set's details: the command, then the facts a table cannot hold."""
    lines = [f".. _zoo-{name}:", "", f".. rubric:: ``{name}``", ""]
    if w.recipe:
        lines += [".. code-block:: bash", ""]
        lines += [f"   {line}" for line in _wrapped_command(w.recipe)]
        lines.append("")
    runs = len(w.seed_accuracies)
    seeds = (
        f"**Seeds 0-{runs - 1}** " + ", ".join(f"{a:.2f}%" for a in w.seed_accuracies)
        if runs > 1
        else "**Seeds** one run"
    )
    lines += [
        f"**File** ``{w.file}`` ({w.file_size:,} bytes, SHA-256 ``{w.sha256[:12]}…``)."
        f" **Classes** {', '.join(w.classes)}. **Normalisation** mean {w.mean}, std {w.std}."
        f" {seeds}."
        f" **Trained with** torch {w.torch_version or 'unknown'}.",
        "",
        w.notes,
        "",
    ]
    return lines


class ZooDirective(SphinxDirective):
    """``.. lenet5-zoo::``: the table of bundled weights, then each set's recipe."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from lenet5.weights import DEFAULT, REGISTRY

        lines = [*_table(REGISTRY, DEFAULT), ""]
        for name, w in REGISTRY.items():
            lines += _entry(name, w)
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source="lenet5-zoo"), container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("lenet5-zoo", ZooDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
