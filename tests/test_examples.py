"""The examples of ``examples/``: every script runs as a user runs it, and is a gallery page.

Each script runs in a subprocess (``python examples/SECTION/NAME.py --out DIR``, and
``--subset 512 --epochs 1`` for the ones that train) from a scratch working folder, and
must exit with 0, write only under ``--out`` (its figures among it, as PNG files) and
end with its result line: for most, ``test accuracy: 61.30%`` (several percentages for
the scripts that compare runs), each above the floor set for it below. On 512 training
images one epoch is 16 steps of 32: chance is 10%, and the floors sit well below what
the scripts reach (about 50-75%) yet far above chance.

Every script must have an entry in :data:`RECIPES` and one in the gallery's
``examples/_gallery.py`` (the flags its page is built with), be in a section that
``docs/conf.py`` orders, have the form of a gallery page, and be linked from
``docs/recipes.rst``; so a new example without a test, or outside the gallery, fails.

When the tests run in one process (not under ``pytest -n``), the scripts of the selected
tests start ahead, :data:`PARALLEL` at a time, slowest first, and each test waits for its
own: the scripts spend most of their time single-threaded (imports, small batches).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
RECIPES_PAGE = REPO / "docs" / "recipes.rst"
CONF = REPO / "docs" / "conf.py"
#: Seconds one script may run: about ten times what each takes on a loaded 2-core machine.
TIMEOUT = 300
#: Scripts running at once when the tests run in one process.
PARALLEL = int(os.environ.get("LENET5_EXAMPLES_PARALLEL", "3"))
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


@dataclass(frozen=True)
class Recipe:
    """How the test runs one script, and what its output must show."""

    #: Arguments besides ``--data-dir``, ``--out`` and (``trains``) ``--subset 512
    #: --epochs 1``.
    args: tuple[str, ...] = ()
    #: The script trains: it takes ``--subset`` and ``--epochs``.
    trains: bool = True
    #: The script reads MNIST (it takes ``--data-dir``).
    reads_data: bool = True
    #: A regular expression that the last line of the output must match.
    result: str = r"^test accuracy: "
    #: Every percentage of the last line must be above this (and at most 100).
    floor: float | None = 35.0
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
#: 52% (its teacher about 80%). The bundled weights score 99.36%.
RECIPES: dict[str, Recipe] = {
    # examples/inference/
    "predict_your_picture": Recipe(
        trains=False,
        reads_data=False,
        result=r"^three\.png: 3 \(\d+\.\d\d%\)   top-3: 3 ",
        floor=None,
        shows=(r"^seven\.jpg: 7 \(\d+\.\d\d%\)   top-3: 7 ", r"^weights mnist-v3, backend "),
    ),
    "onnx_runtime": Recipe(
        args=("--repeats", "3"),
        trains=False,
        floor=99.0,
        shows=(
            r"^wrote lenet5\.onnx: [\d,]+ bytes$",
            r"^largest logit difference: \d\.\de-(0[5-9]|[1-9]\d)$",
            r"^same class for 10000 of 10000 images$",
            r"^OnnxRuntimeModel +\d+\.\d +\d+\.\d +\d+\.\d$",
        ),
    ),
    "torch_hub": Recipe(
        trains=False,
        result=r"^test accuracy: 99\.36% \(the torch\.hub model\)$",
        floor=99.0,
        shows=(
            r"^_lenet5_hub\.model LeNet5 weights: mnist-v3$",
            r"^same tensors as LeNet5\.from_pretrained\('DEFAULT'\): True$",
        ),
    ),
    # examples/research/
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
    "tensorboard_logging": Recipe(
        args=("--every", "4"),
        shows=(r"tensorboard --logdir \S+out$", r"'epoch/val_accuracy'", r"'step/loss'"),
    ),
    "lr_sweep": Recipe(args=("--lrs", "1e-3", "1e-2"), shows=(r" 1e-02 +\d+\.\d{4} +\d+\.\d\d%",)),
    "custom_model": Recipe(shows=(r"test image 0: label 7, predicted \d \(\d+\.\d%\)",)),
}


def _scripts() -> dict[str, Path]:
    """Every example script by name (``examples/SECTION/NAME.py``; ``_*`` are helpers)."""
    return {p.stem: p for p in sorted(EXAMPLES.glob("*/*.py")) if not p.name.startswith("_")}


def _params() -> list[object]:
    return [
        pytest.param(name, marks=[pytest.mark.slow] if recipe.slow else [], id=name)
        for name, recipe in RECIPES.items()
    ]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@dataclass
class _Run:
    """One script's subprocess, its folders and its output files."""

    process: subprocess.Popen[bytes]
    cwd: Path
    out: Path
    stdout: Path
    stderr: Path
    start: float
    end: float | None = None


class _Runner:
    """Starts the scripts (a few ahead when the tests run in one process) and waits."""

    def __init__(self, root: Path, mnist_dir: Path, ahead: list[str]) -> None:
        self.root, self.mnist_dir, self.ahead = root, mnist_dir, ahead
        self.runs: dict[str, _Run] = {}

    def _start(self, name: str) -> None:
        recipe, folder = RECIPES[name], self.root / name
        cwd, out = folder / "cwd", folder / "out"
        cwd.mkdir(parents=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("LENET5_DATA_DIR", None)
        data = ["--data-dir", str(self.mnist_dir)] if recipe.reads_data else []
        if recipe.data_dir_from_env:
            env["LENET5_DATA_DIR"], data = str(self.mnist_dir), []
        short = ("--subset", "512", "--epochs", "1") if recipe.trains else ()
        command = [
            sys.executable,
            str(_scripts()[name]),
            *data,
            *short,
            *("--out", str(out)),
            *recipe.args,  # argparse keeps the last of a repeated option
        ]
        stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
        with open(stdout, "wb") as o, open(stderr, "wb") as e:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=o, stderr=e)
        self.runs[name] = _Run(process, cwd, out, stdout, stderr, time.perf_counter())

    def _top_up(self) -> None:
        for run in self.runs.values():
            if run.end is None and run.process.poll() is not None:
                run.end = time.perf_counter()
        running = sum(run.end is None for run in self.runs.values())
        for name in self.ahead:
            if running >= PARALLEL:
                break
            if name not in self.runs:
                self._start(name)
                running += 1

    def wait(self, name: str) -> _Run:
        """The finished run of ``name`` (started now if it was not yet)."""
        if name not in self.runs:
            self._start(name)
        run = self.runs[name]
        while run.process.poll() is None:
            self._top_up()
            if time.perf_counter() - run.start > TIMEOUT:
                run.process.kill()
                run.process.wait()
                pytest.fail(f"{name} ran past {TIMEOUT} s:\n{_text(run.stdout)}")
            time.sleep(0.1)
        if run.end is None:
            run.end = time.perf_counter()
        self._top_up()
        return run

    def close(self) -> None:
        for run in self.runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.fixture(scope="module")
def runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path
) -> Iterator[_Runner]:
    ahead: list[str] = []
    if "PYTEST_XDIST_WORKER" not in os.environ:  # under xdist, each worker runs its own
        selected = [
            item.callspec.params["name"]
            for item in request.session.items
            if item.path == Path(__file__) and hasattr(item, "callspec")
        ]
        ahead = sorted(selected, key=lambda name: not RECIPES[name].slow)
    started = _Runner(tmp_path_factory.mktemp("examples"), mnist_dir, ahead)
    yield started
    started.close()


@pytest.mark.parametrize("name", _params())
def test_example_runs_to_its_result(name: str, runner: _Runner) -> None:
    recipe, script = RECIPES[name], f"examples/{_scripts()[name].relative_to(EXAMPLES)}"
    run = runner.wait(name)
    stdout, stderr = _text(run.stdout), _text(run.stderr)
    assert run.end is not None
    print(f"{script}: {run.end - run.start:.1f} s")  # shown with pytest -s or -rP
    assert run.process.returncode == 0, f"{script} failed:\n{stdout}\n{stderr}"
    lines = stdout.splitlines()
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    assert re.search(recipe.result, last), f"last line {last!r}:\n{stdout}"
    if recipe.floor is not None:
        accuracies = [float(v) for v in _PERCENT.findall(last)]
        assert accuracies, last
        assert all(recipe.floor < a <= 100.0 for a in accuracies), (last, recipe.floor)
    for pattern in recipe.shows:
        assert any(re.search(pattern, line) for line in lines), (pattern, stdout)
    assert run.out.is_dir(), f"{script} wrote nothing under --out"
    assert list(run.out.rglob("*.png")), f"{script} saved no figure under --out"
    assert list(run.cwd.iterdir()) == [], f"{script} wrote outside --out"


def _gallery() -> ModuleType:
    """``examples/_gallery.py``, the flags of each page (imported by docs/conf.py)."""
    spec = importlib.util.spec_from_file_location("_gallery", EXAMPLES / "_gallery.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gallery_conf() -> dict[str, object]:
    """The literal values of ``sphinx_gallery_conf`` in docs/conf.py."""
    for node in ast.walk(ast.parse(CONF.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "sphinx_gallery_conf":
            assert isinstance(node.value, ast.Dict)
            conf: dict[str, object] = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(key, ast.Constant)
                try:
                    conf[str(key.value)] = ast.literal_eval(value)
                except ValueError:
                    conf[str(key.value)] = ast.unparse(value)
            return conf
    raise AssertionError("docs/conf.py sets no sphinx_gallery_conf")


def test_every_example_is_tested() -> None:
    assert sorted(_scripts()) == sorted(RECIPES), (
        "every script of examples/ needs an entry in RECIPES (and one there, a script)"
    )


def test_every_example_is_in_the_gallery() -> None:
    scripts, conf, flags = _scripts(), _gallery_conf(), _gallery().GALLERY_ARGS
    assert sorted(flags) == sorted(scripts), "examples/_gallery.py: GALLERY_ARGS, a script"
    assert conf["examples_dirs"] == "../examples"
    sections = {p.parent.name for p in scripts.values()}
    assert conf["subsection_order"] == [f"../examples/{s}" for s in sorted(sections)], conf
    for section in sections:
        assert (EXAMPLES / section / "README.rst").is_file(), f"{section}/ has no README.rst"
    for name, path in scripts.items():
        assert re.search(str(conf["filename_pattern"]), str(path)), f"{name}: not run"
        assert not re.search(str(conf["ignore_pattern"]), path.name), f"{name}: ignored"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_example_is_a_gallery_page(name: str) -> None:
    path = _scripts()[name]
    source = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source), clean=False) or ""
    title, underline, *_ = [*docstring.strip("\n").splitlines(), "", ""]
    assert title, f"{name}: the docstring starts with no title"
    assert underline == "=" * len(title), f"{name}: the docstring's RST title"
    assert source.count("\n# %%\n") >= 2, f"{name}: text cells (# %%) between the steps"
    assert "plt.subplots(" in source, f"{name}: no figure"
    assert f"python examples/{path.parent.name}/{name}.py" in docstring, "the command"
    flags = " ".join(_gallery().GALLERY_ARGS[name])
    built = f"built with ``{flags}``" if flags else "built without flags"
    assert " ".join(built.split()) in " ".join(docstring.split()), f"{name}: say {built!r}"
    options = ["--out"]
    options += ["--data-dir"] if RECIPES[name].reads_data else []
    options += ["--subset", "--epochs"] if RECIPES[name].trains else []
    for option in options:
        assert f'"{option}"' in source, f"{name}.py has no {option}"


def test_recipes_page_links_every_example() -> None:
    page = RECIPES_PAGE.read_text(encoding="utf-8")
    for name, path in _scripts().items():
        label = f"sphx_glr_gallery_{path.parent.name}_{name}.py"
        assert f"<{label}>`" in page, f"recipes.rst does not link {label}"
    # Furo has a table of contents of its own (a contents directive renders as an error).
    assert ".. contents::" not in page
    assert "literalinclude" not in page, "the gallery shows the scripts, not excerpts"
