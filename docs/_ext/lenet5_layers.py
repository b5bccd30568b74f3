"""Sphinx directives ``.. lenet5-layers::`` (the package's layers) and
``.. lenet5-training::`` (the modules of ``lenet5.training`` in import order), drawn from the
code.

The layers come from the import-linter contract in pyproject.toml (the same list that
``lint-imports`` enforces) and the arrows from grimp's import graph of ``src/lenet5`` (every
import, also inside functions, except ``if TYPE_CHECKING:`` blocks), so the picture cannot
drift from the code: a module missing from the contract, or an import that goes up, fails
the docs build.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

import tomllib
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]


def _summary(module: str) -> str:
    """The first line of a module's docstring (a package's ``__init__.py``)."""
    base = ROOT / "src" / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    line = doc.splitlines()[0].rstrip(".") if doc else ""
    # The picture is plain text: roles and literals become their words.
    line = re.sub(r":[\w:]+:`~?([^`<]*?)(?: <[^>]+>)?`", r"\1", line)
    return line.replace("``", "")


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    for i, layer in enumerate(layers):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return i
    return None


def draw() -> str:
    """The layers as a text picture, highest first, with the layers each one imports."""
    import grimp

    graph = grimp.build_graph(
        "lenet5",
        include_external_packages=False,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )
    layers = _layers()
    uses: dict[int, set[int]] = {i: set() for i in range(len(layers))}
    for importer in graph.modules:
        mine = _layer_of(importer, layers)
        if mine is None:
            if importer != "lenet5":
                raise ExtensionError(f"{importer} is in no layer of the import contract")
            continue
        for imported in graph.find_modules_directly_imported_by(importer):
            theirs = _layer_of(imported, layers)
            if theirs is not None and theirs != mine:
                if theirs < mine:
                    raise ExtensionError(f"{importer} imports {imported}, a higher layer")
                uses[mine].add(theirs)
    return _picture(layers, uses)


def _picture(layers: list[list[str]], uses: dict[int, set[int]]) -> str:
    width = 84  # fits a documentation page without scrolling
    names = max(len(m.removeprefix("lenet5.")) for layer in layers for m in layer)
    rule = "+" + "-" * (width - 2) + "+"
    lines: list[str] = []
    for i, layer in enumerate(layers):
        number = len(layers) - i
        below = ", ".join(str(len(layers) - j) for j in sorted(uses[i]))
        lines += [rule, f"| {f'layer {number}':<{width - 4}} |"]
        for module in layer:
            summary = textwrap.wrap(_summary(module).replace("``", ""), width - names - 8)
            for k, text in enumerate(summary or [""]):
                name = module.removeprefix("lenet5.") if k == 0 else ""
                lines.append(f"|   {name:<{names}}  {text:<{width - names - 7}}|")
        if below:
            lines.append(f"| {f'imports layers {below}':>{width - 4}} |")
    lines.append(rule)
    return "\n".join(lines)


def draw_training() -> str:
    """The modules of ``lenet5.training``, each after every module it imports, with the
    training modules it imports (``if TYPE_CHECKING:`` imports counted too: there is no
    cycle even among them)."""
    import grimp

    graph = grimp.build_graph(
        "lenet5",
        include_external_packages=False,
        exclude_type_checking_imports=False,
        cache_dir=None,
    )
    package = "lenet5.training"
    modules = sorted(m for m in graph.modules if m.startswith(package + ".") and m.count(".") == 2)

    def top(module: str) -> str:
        return ".".join(module.split(".")[:3])

    imports = {
        m: {
            top(i)
            for sub in graph.find_descendants(m) | {m}
            for i in graph.find_modules_directly_imported_by(sub)
            if i.startswith(package + ".") and top(i) != m
        }
        for m in modules
    }
    ordered: list[str] = []
    while len(ordered) < len(modules):
        ready = [m for m in modules if m not in ordered and imports[m] <= set(ordered)]
        if not ready:
            raise ExtensionError(f"an import cycle among {sorted(set(modules) - set(ordered))}")
        ordered += ready
    width = 84
    names = max(len(m.removeprefix(package + ".")) for m in ordered)
    lines = []
    for m in ordered:
        name = m.removeprefix(package + ".")
        used = ", ".join(sorted(i.removeprefix(package + ".") for i in imports[m]))
        summary = textwrap.wrap(_summary(m), width - names - 4)
        for k, text in enumerate(summary or [""]):
            lines.append(f"{name if k == 0 else '':<{names}}  {text}")
        if used:
            for text in textwrap.wrap(f"<- {used}", width - names - 4):
                lines.append(f"{'':<{names}}  {text}")
        lines.append("")
    return "\n".join(lines).rstrip()


class TrainingDirective(SphinxDirective):
    """Insert :func:`draw_training`'s picture as a literal block."""

    def run(self) -> list[nodes.Node]:
        block = nodes.literal_block(text=draw_training())
        block["language"] = "text"
        return [block]


class LayersDirective(SphinxDirective):
    """Insert :func:`draw`'s picture as a literal block."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(ROOT / "pyproject.toml"))
        block = nodes.literal_block(text=draw())
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("lenet5-layers", LayersDirective)
    app.add_directive("lenet5-training", TrainingDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
