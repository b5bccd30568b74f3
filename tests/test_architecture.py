"""The package's shape: layers without cycles, small modules and functions, lazy imports.

The import graph here is grimp's (the library behind import-linter): every ``import`` in
``src/lenet5``, also inside functions, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import tomllib

import lenet5

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lenet5"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(
        "lenet5",
        include_external_packages=False,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_cycle(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_a_cycle_would_be_found() -> None:
    # The check above is only worth something if it can fail.
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]


def test_every_module_belongs_to_a_layer(graph: grimp.ImportGraph) -> None:
    layered = {m for layer in _layers() for m in layer}
    unplaced = sorted(
        m
        for m in graph.modules
        if m != "lenet5" and not any(m == top or m.startswith(top + ".") for top in layered)
    )
    assert unplaced == [], "add these modules to the layers in pyproject.toml"


def test_no_module_imports_a_higher_layer(graph: grimp.ImportGraph) -> None:
    illegal = graph.find_illegal_dependencies_for_layers(layers=[set(layer) for layer in _layers()])
    assert {(d.importer, d.imported) for d in illegal} == set()


def _python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_modules_are_small() -> None:
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _python_files()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_functions_are_short() -> None:
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length >= MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length})")
    assert long == []


def test_import_lenet5_does_not_load_torch() -> None:
    code = "import sys, lenet5; print(lenet5.__version__); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == [lenet5.__version__, "False"]


def test_every_top_level_name_resolves_to_its_defining_module() -> None:
    for name in lenet5.__all__:
        value = getattr(lenet5, name)
        if name == "__version__":
            continue
        home = lenet5._HOMES[name]
        assert getattr(sys.modules[f"lenet5.{home}"], name) is value, name
