"""The package's shape: layers without cycles, short functions, lazy imports, public names
with one public path, the fit in one place.

The import graph here is grimp's (the library behind import-linter): every ``import`` in
``src/lenet5``, also inside functions; the layers are checked without the imports under
``if TYPE_CHECKING:``, the cycles with them too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import tomllib

import lenet5
from lenet5.training import EarlyStopping

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lenet5"
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


def test_no_cycle_even_through_type_checking_imports() -> None:
    graph = grimp.build_graph(
        "lenet5",
        include_external_packages=False,
        exclude_type_checking_imports=False,
        cache_dir=None,
    )
    assert _cycles(graph) == []


def test_no_module_is_explained_by_a_size_limit() -> None:
    """Modules are cut by concept: no docstring says a module exists to keep another small."""
    pattern = re.compile(r"keep\w*\s+(that|each|this)?\s*(one|file|module)?\s*small|400 lines")
    found = [
        str(p.relative_to(SRC)) for p in _python_files() if pattern.search(p.read_text().lower())
    ]
    assert found == []


def test_the_path_from_fit_to_the_optimizer_step_is_three_modules() -> None:
    """Trainer.fit's set-up, loop, step and validation live in trainer.py; the state and the
    optimizer factory are the other two modules on the way to ``optimizer.step()``."""
    from lenet5.training import trainer

    source = (SRC / "training" / "trainer.py").read_text()
    for method in ("_new_state", "_build_step", "_run_epochs", "_run_batches", "_step"):
        assert f"def {method}(" in source
    assert "optimizer.step()" in source
    training_imports = {
        name
        for name in grimp.build_graph("lenet5", cache_dir=None).find_modules_directly_imported_by(
            "lenet5.training.trainer"
        )
        if name.startswith("lenet5.training.")
    }
    step_path = {"lenet5.training.state", "lenet5.training.optim"}
    assert step_path <= training_imports
    assert trainer.Trainer.fit.__module__ == "lenet5.training.trainer"
    for gone in ("engine", "loop", "_feed", "_fit_setup", "precision", "_resume"):
        assert not (SRC / "training" / f"{gone}.py").exists(), gone


def test_the_state_is_data() -> None:
    """TrainState holds no reference back to the Trainer (callbacks get all from it)."""
    import dataclasses

    from lenet5 import TrainState

    names = {f.name for f in dataclasses.fields(TrainState)}
    assert "trainer" not in names
    assert "callbacks" in names


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


PUBLIC_PACKAGES = (
    "lenet5",
    "lenet5.data",
    "lenet5.augment",
    "lenet5.corruptions",
    "lenet5.weights",
    "lenet5.export",
    "lenet5.training.callbacks",
    "lenet5.training.checkpoint",
    "lenet5.training.trainer",
    "lenet5.cli",
)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_public_names_have_a_public_module(package: str) -> None:
    """Reprs, errors, pickles and the API reference name the path users import from: each
    public name's ``__module__`` has no private part and gives the same object back."""
    import importlib
    import inspect
    import pickle

    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants and type aliases carry no module of their own
        assert not any(part.startswith("_") for part in home.split(".")), (name, home)
        assert getattr(importlib.import_module(home), value.__name__) is value, name
        if isinstance(value, type):
            assert pickle.loads(pickle.dumps(value)) is value, name
    assert repr(lenet5.DevicePlacement) == "<class 'lenet5.training.callbacks.DevicePlacement'>"


# ---------------------------------------------------------------------------- public names


def test_dir_of_the_package_lists_the_lazily_imported_names() -> None:
    names = dir(lenet5)
    assert {"Trainer", "LeNet5", "Checkpoint", "evaluate", "load_dataset"} <= set(names)
    assert set(lenet5.__all__) <= set(names)


def test_the_callback_api_has_one_public_path() -> None:
    import pickle

    import lenet5.callbacks
    import lenet5.training.callbacks as home

    for name in home.__all__:
        assert getattr(lenet5.callbacks, name) is getattr(home, name)
    # The older paths that lenet5.training still answers lead to the same objects.
    for name in ("HOOKS", "Callback", "CallbackError", "Checkpoint", "EarlyStopping", "Timer"):
        assert getattr(lenet5.training, name) is getattr(home, name)
    assert home.HOOKS is home._base.HOOKS
    stopper = pickle.loads(pickle.dumps(EarlyStopping(patience=4)))
    assert type(stopper) is EarlyStopping
    assert stopper.patience == 4
