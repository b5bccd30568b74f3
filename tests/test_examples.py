"""The research recipes of ``examples/``: every script runs, as a user runs it, to its result.

Each script runs in a subprocess (``python examples/NAME.py --subset 512 --epochs 1 --out
DIR``) from a scratch working folder, and must exit with 0, write only under ``--out``, and
end with the line ``test accuracy: 61.30%`` (several percentages for the scripts that
compare runs), each above the floor set for it below. On 512 training images one epoch is
16 steps of 32: chance is 10%, and the floors sit well below what the scripts reach (about
50-75%) yet far above chance.

Every script must have an entry in :data:`RECIPES`, and ``docs/recipes.rst`` must include
every script, so a new example without a test, or without its section, fails.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
RECIPES_PAGE = REPO / "docs" / "recipes.rst"
#: Seconds one script may run: about ten times what each takes on a loaded 2-core machine.
TIMEOUT = 300
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


@dataclass(frozen=True)
class Recipe:
    """How the test runs one script, and what its result line must show."""

    #: Arguments besides ``--data-dir``, ``--subset 512``, ``--epochs 1`` and ``--out``.
    args: tuple[str, ...] = ()
    #: Every percentage of the last line must be above this (and at most 100).
    floor: float = 35.0
    #: Regular expressions that lines of the output must match (what the recipe shows).
    shows: tuple[str, ...] = ()
    #: Pass the data folder as ``LENET5_DATA_DIR`` instead of ``--data-dir``.
    data_dir_from_env: bool = False
    #: The script takes over ~30 s on a loaded 2-core machine (``-m "not slow"`` skips it).
    slow: bool = False


#: Every script of examples/, by name. Measured on 512 images, one epoch, one thread:
#: mixup, auxiliary_loss, grad_clipping, bf16 and custom_model about 58-61%, accumulation
#: 50% (4 steps of 128), lr_sweep 74% (the better of two rates), tensorboard_logging 60%,
#: compile 69% (two epochs, so that the script has a later epoch to time), distillation
#: 52% (its teacher about 80%).
RECIPES: dict[str, Recipe] = {
    "mixup": Recipe(data_dir_from_env=True),
    "distillation": Recipe(shows=(r"teacher test accuracy: \d+\.\d\d%",)),
    "auxiliary_loss": Recipe(shows=(r"epoch 1: loss \d+\.\d+, mean logit\^2 \d+\.\d+",)),
    "grad_clipping": Recipe(shows=(r"16 steps, clipped to 1\.0 in \d+\.\d% of them",)),
    "bf16": Recipe(shows=(r"32 +\d+\.\d\d% +\d+\.\d s", r"bf16-mixed +\d+\.\d\d% +\d+\.\d s")),
    # The two runs take the same 4 steps: their weights differ by rounding (below 1e-4).
    "accumulation": Recipe(
        floor=30.0,
        shows=(r"batch 32 x 4: 4 steps", r"largest weight difference: \d\.\de-(0[5-9]|[1-9]\d)"),
    ),
    # About 40 s with torch's compilation cache empty (10 s with it warm).
    "compile": Recipe(
        args=("--epochs", "2"),
        shows=(r"epoch 1: .* s \(includes the compilation\)", r"epoch 2: \d+\.\d\d s$"),
        slow=True,
    ),
    "tensorboard_logging": Recipe(args=("--every", "4"), shows=(r"tensorboard --logdir \S+out$",)),
    "lr_sweep": Recipe(args=("--lrs", "1e-3", "1e-2"), shows=(r" 1e-02 +\d+\.\d{4} +\d+\.\d\d%",)),
    "custom_model": Recipe(shows=(r"test image 0: label 7, predicted \d \(\d+\.\d%\)",)),
}


def _scripts() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py"))


def _params() -> list[object]:
    return [
        pytest.param(name, marks=[pytest.mark.slow] if recipe.slow else [], id=name)
        for name, recipe in RECIPES.items()
    ]


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


@pytest.mark.parametrize("name", _params())
def test_example_runs_to_its_result(name: str, mnist_dir: Path, tmp_path: Path) -> None:
    recipe = RECIPES[name]
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LENET5_DATA_DIR", None)
    data = ["--data-dir", str(mnist_dir)]
    if recipe.data_dir_from_env:
        env["LENET5_DATA_DIR"], data = str(mnist_dir), []
    command = [
        sys.executable,
        str(EXAMPLES / f"{name}.py"),
        *data,
        *("--subset", "512", "--epochs", "1", "--out", str(out)),
        *recipe.args,  # argparse keeps the last of a repeated option
    ]
    start = time.perf_counter()
    try:
        run = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"examples/{name}.py ran past {TIMEOUT} s:\n{_text(exc.stdout)}\n{_text(exc.stderr)}"
        )
    seconds = time.perf_counter() - start
    print(f"examples/{name}.py: {seconds:.1f} s")  # shown with pytest -s or -rP
    assert run.returncode == 0, f"examples/{name}.py failed:\n{run.stdout}\n{run.stderr}"
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert last.startswith("test accuracy: "), f"last line {last!r}:\n{run.stdout}"
    accuracies = [float(v) for v in _PERCENT.findall(last)]
    assert accuracies, last
    assert all(recipe.floor < a <= 100.0 for a in accuracies), (last, recipe.floor)
    assert out.is_dir(), f"examples/{name}.py wrote nothing under --out"
    assert any(p.is_file() for p in out.rglob("*")), f"examples/{name}.py: {out} is empty"
    assert list(cwd.iterdir()) == [], f"examples/{name}.py wrote outside --out"
    lines = run.stdout.splitlines()
    for pattern in recipe.shows:
        assert any(re.search(pattern, line) for line in lines), (pattern, run.stdout)


def test_every_example_is_tested() -> None:
    assert _scripts() == sorted(RECIPES), (
        "every script of examples/ needs an entry in RECIPES (and one there, a script)"
    )


def test_every_example_takes_the_common_options() -> None:
    for name in _scripts():
        source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(source)), f"{name}.py has no module docstring"
        assert f"python examples/{name}.py" in source, f"{name}.py: its docstring's command"
        for option in ("--data-dir", "--subset", "--epochs", "--out"):
            assert f'"{option}"' in source, f"{name}.py has no {option}"


def _includes() -> list[tuple[str, dict[str, str]]]:
    """Each ``literalinclude`` of an example in the recipes page: the name, its options."""
    found: list[tuple[str, dict[str, str]]] = []
    lines = RECIPES_PAGE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"\.\. literalinclude:: \.\./examples/(\w+)\.py\s*$", line)
        if match is None:
            continue
        options: dict[str, str] = {}
        for option in lines[i + 1 :]:
            field = re.match(r"\s+:([\w-]+):\s*(.*)$", option)
            if field is None:
                break
            options[field[1]] = field[2]
        found.append((match[1], options))
    return found


def _objects(source: str) -> set[str]:
    """The top-level functions and classes of a script."""
    return {
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }


def test_recipes_page_includes_every_example() -> None:
    includes = _includes()
    assert sorted({name for name, _ in includes}) == _scripts()
    page = RECIPES_PAGE.read_text(encoding="utf-8")
    for name, options in includes:
        source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
        # The excerpts follow the scripts: by object name and by text, never by line number.
        assert "lines" not in options, f"{name}: include by :pyobject: or :start-at:, not :lines:"
        assert options.get("pyobject") in _objects(source), (name, options)
        for anchor in ("start-at", "end-at"):
            if anchor in options:
                assert options[anchor] in source, (name, anchor, options[anchor])
        assert f"$ python examples/{name}.py" in page, f"recipes.rst shows no command for {name}"
