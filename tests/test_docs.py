"""The docs run: every Python block and ``lenet5`` console example of README.md and docs/.

Each page runs in its own subprocess (``tests/doc_blocks.py``), in a scratch working folder
laid out as the docs assume, so that their relative paths resolve:

* ``../shared/data/mnist`` and ``../shared/data/fashion-mnist`` hold real IDX files: the
  first 64 training images (5,064 for the code of a page that holds 5,000 out for
  validation: the runner points the folder at those for that code only), so that every
  training in the docs takes seconds, and the official test split (linked) on the pages
  that show ``lenet5 evaluate`` output, so that it prints the accuracies the docs show
  (99.36% for ``DEFAULT``), else its first 500 images;
* ``digits/``, ``photos/`` and the other pictures the docs name, drawn from MNIST and
  Fashion-MNIST test images (the docs' own pictures are not in the repository, so the
  probabilities ``lenet5 predict`` prints are not compared, its paths and labels are);
* a run folder wherever a page loads ``runs/NAME`` without making it first, made by
  ``lenet5 train``;
* caches as a user who went online once has them: torch.hub's copy of ``lenet5/lenet5``
  (this checkout) and a Hugging Face Hub repo ``someone/lenet5-mnist`` (``mnist-v1``'s
  weights), read with ``HF_HUB_OFFLINE=1``; ``path/to/...`` checkouts are this checkout;
* the callback plugin package a page writes (``plugins.rst``) installed as pip would,
  from the page's own files.

The blocks of a page share one namespace, in document order. Console commands whose output
the page shows are compared with what they print (``...`` matches anything), except those
whose numbers depend on the training data, which are run for their exit code. What is not
run is reported as a skipped test, with the reason.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

import doc_blocks
from doc_blocks import Block
from lenet5 import LeNet5
from lenet5.cli import main
from lenet5.data import ImageSet, load_dataset
from lenet5.training.callbacks import Callback
from lenet5.training.plugins import BUILTIN, create_callback
from lenet5.weights import DEFAULT, REGISTRY

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.rst"))]
BLOCKS = {page: doc_blocks.extract(REPO / page, REPO) for page in PAGES}
CUDA = torch.cuda.is_available()


def _runs_something(page: str) -> bool:
    """Whether the runner would run any block or command of the page."""
    for block in BLOCKS[page]:
        if block.skip:
            continue
        if block.is_python:
            return True
        steps = [doc_blocks.plan(c, CUDA).action for c in doc_blocks.commands(block)]
        if block.language == "console" and set(steps) - {"skip"}:
            return True
    return False


RUNNABLE = [page for page in PAGES if _runs_something(page)]
#: Training images in the runner's data folders (plus any a page holds out for validation).
TRAIN_IMAGES = 64
#: Test images on pages that compare no `lenet5 evaluate` output (the others get all 10,000).
TEST_IMAGES = 500
_RUN_FOLDER = re.compile(r"\bruns/[\w.-]+")
_MADE_RUN = re.compile(r"(?:--out |save_pretrained\(\")(runs/[\w.-]+)")
_PLACEHOLDER = re.compile(r"\bpath/to/[\w.-]+")
_HUB_REPO = "someone/lenet5-mnist"


def _text(page: str) -> str:
    return (REPO / page).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- what is not run


def _not_run() -> list[tuple[str, str]]:
    """Every block, statement or command of the docs that the runner does not run, and why."""
    found: list[tuple[str, str]] = []
    for page in PAGES:
        for block in BLOCKS[page]:
            if block.is_python:
                if block.skip:
                    found.append((block.where, block.skip))
                    continue
                for n, what in sorted(doc_blocks.needs_lines(block.code).items()):
                    if what == "internet" or not CUDA:
                        line = block.code.splitlines()[n - 1].strip()
                        found.append((f"{page}:{block.line + n - 1}", f"needs {what}: {line}"))
            elif block.language == "console":
                for command in doc_blocks.commands(block):
                    step = doc_blocks.plan(command, CUDA)
                    if block.skip or step.action == "skip":
                        why = block.skip or step.reason
                        found.append((f"{page}:{command.line}", f"{why}: $ {command.text}"))
    return found


NOT_RUN = _not_run()


@pytest.mark.parametrize(("where", "reason"), NOT_RUN, ids=[w for w, _ in NOT_RUN])
def test_doc_example_not_run(where: str, reason: str) -> None:
    """Reported, not run (``pytest -ra`` lists them with their reasons)."""
    pytest.skip(f"{where}: {reason}")


# --------------------------------------------------------------------------- the working folder


def _draw(
    digit: torch.Tensor, scale: int, ink: tuple[int, ...], paper: tuple[int, ...]
) -> Image.Image:
    """An MNIST-style image as an ordinary picture: enlarged, coloured, off-centre."""
    mask = Image.fromarray(digit.numpy(), mode="L").resize(
        (28 * scale, 28 * scale), Image.Resampling.BICUBIC
    )
    mode = "RGBA" if len(paper) == 4 else "RGB"
    size = (28 * scale + 40, 28 * scale + 20)
    picture = Image.new(mode, size, paper)
    picture.paste(Image.new(mode, mask.size, ink), (30, 8), mask)
    return picture


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, fashion_dir: Path) -> Path:
    """The pictures the docs classify, each a test image of the class its name says."""
    folder = tmp_path_factory.mktemp("doc-pictures")
    (folder / "digits").mkdir()
    (folder / "photos").mkdir()
    test = load_dataset("mnist", mnist_dir, split="test")
    # MNIST test images 0-4 are a 7, a 2, a 1, a 0 and a 4.
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    seven, two, one, zero, four = test.images[:5]
    _draw(seven, 5, (20, 20, 20), (255, 255, 255)).save(folder / "digits/seven.png")
    _draw(zero, 6, (30, 30, 200), (250, 240, 200)).convert("RGB").save(
        folder / "digits/zero.jpg", quality=95
    )
    _draw(one, 4, (60, 60, 60, 255), (0, 0, 0, 0)).save(folder / "digits/one_transparent.png")
    _draw(four, 4, (235, 235, 235), (70, 70, 70)).save(folder / "digits/four.png")
    _draw(two, 3, (0, 0, 0), (255, 255, 255)).save(folder / "digits/two.png")
    for i in range(3):
        label = int(test.labels[i])
        Image.fromarray(test.images[i].numpy(), mode="L").save(
            folder / f"digits/mnist_test_{i}_label_{label}.png"
        )
    shutil.copy(folder / "digits/seven.png", folder / "my-digit.png")
    shutil.copy(folder / "digits/two.png", folder / "photos/two.png")
    shutil.copy(folder / "digits/four.png", folder / "photos/four.png")
    Image.new("RGB", (64, 64), (128, 128, 128)).save(folder / "blank.png")
    (folder / "notes.txt.png").write_text("a text file, not a picture\n")
    fashion = load_dataset("fashion-mnist", fashion_dir, split="test")
    classes = list(fashion.classes)
    shoe = fashion.images[fashion.labels.tolist().index(classes.index("Sneaker"))]
    shirt = fashion.images[fashion.labels.tolist().index(classes.index("Shirt"))]
    _draw(shoe, 5, (230, 230, 230), (10, 10, 10)).save(folder / "shoe.png")
    _draw(shirt, 5, (230, 230, 230), (10, 10, 10)).save(folder / "shirt.jpg", quality=95)
    return folder


def _small_copy(
    source: Path,
    splits: tuple[ImageSet, ImageSet],
    sizes: tuple[int, int | None],
    folder: Path,
    write_idx: Callable[..., Path],
) -> Path:
    """The first ``sizes[0]`` training images and the first ``sizes[1]`` test images as IDX
    files; with ``sizes[1] = None``, the real test files (linked)."""
    folder.mkdir(parents=True)
    for (prefix, split), size in zip(
        (("train", splits[0]), ("t10k", splits[1])), sizes, strict=True
    ):
        if size is None:
            for f in source.iterdir():
                if f.name.startswith(f"{prefix}-"):
                    (folder / f.name).symlink_to(f.resolve())
            continue
        write_idx(folder / f"{prefix}-images-idx3-ubyte", split.images[:size])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", split.labels[:size].to(torch.uint8))
    return folder


@pytest.fixture(scope="session")
def data_folders(
    tmp_path_factory: pytest.TempPathFactory,
    mnist_dir: Path,
    fashion_dir: Path,
    mnist_train: ImageSet,
    mnist_test: ImageSet,
    idx_writer: Callable[..., Path],
) -> Callable[[int, int | None], Path]:
    """``(training images, test images or None for all) -> shared/data`` folders holding
    ``mnist`` and ``fashion-mnist``, made once per pair of sizes."""
    made: dict[tuple[int, int | None], Path] = {}
    fashion = (
        load_dataset("fashion-mnist", fashion_dir, split="train"),
        load_dataset("fashion-mnist", fashion_dir, split="test"),
    )

    def folder(train: int, test: int | None) -> Path:
        if (train, test) not in made:
            root = tmp_path_factory.mktemp(f"doc-data-{train}-{test or 'all'}")
            sizes = (train, test)
            _small_copy(mnist_dir, (mnist_train, mnist_test), sizes, root / "mnist", idx_writer)
            _small_copy(fashion_dir, fashion, sizes, root / "fashion-mnist", idx_writer)
            made[train, test] = root
        return made[train, test]

    return folder


@pytest.fixture(scope="session")
def hub_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What torch.hub needs of this checkout: hubconf.py and src/lenet5."""
    folder = tmp_path_factory.mktemp("doc-hub") / "lenet5"
    folder.mkdir()
    shutil.copy(REPO / "hubconf.py", folder / "hubconf.py")
    shutil.copytree(
        REPO / "src/lenet5", folder / "src/lenet5", ignore=shutil.ignore_patterns("__pycache__")
    )
    return folder


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the Hub repo the docs load, as a download leaves it."""
    hub = tmp_path_factory.mktemp("doc-hf") / "hub"
    repo = hub / f"models--{_HUB_REPO.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    LeNet5.from_pretrained("mnist-v1").save_pretrained(
        repo / "snapshots" / commit, metadata={"dataset": "mnist"}
    )
    (repo / "refs").mkdir()
    for ref in ("main", "v1.0"):
        (repo / "refs" / ref).write_text(commit)
    return hub


def _lenet5(*args: str | Path) -> tuple[int, str]:
    """Run ``lenet5 ARGS`` in this process (the program is :func:`lenet5.cli.main`): the exit
    code and what it printed on standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the subsets' MD5 is not the official one
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:
            code = int(exit.code or 0)
    return code, out.getvalue()


@pytest.fixture(scope="session")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory, data_folders: Callable[[int, int | None], Path]
) -> Path:
    """A ``lenet5 train`` run folder, for pages that load one they do not make."""
    out = tmp_path_factory.mktemp("doc-run") / "quick"
    data = data_folders(TRAIN_IMAGES, TEST_IMAGES) / "mnist"
    code, printed = _lenet5(
        *("train", "--data-dir", data, "--epochs", "2", "--val-every", "0", "--device", "cpu"),
        *("--quiet", "--out", out),
    )
    assert code == 0, printed
    return out


def _file_blocks(page: str) -> dict[str, Block]:
    """Blocks that a paragraph ``FILE``: introduces, by file name."""
    lines = _text(page).splitlines()
    found: dict[str, Block] = {}
    for block in BLOCKS[page]:
        i = block.line - 2
        while i >= 0 and (not lines[i].strip() or lines[i].strip().startswith((".. ", ":"))):
            i -= 1
        if i >= 0 and (match := re.fullmatch(r"``([\w./-]+)``:", lines[i].strip())):
            found[match[1]] = block
    return found


def _install_plugin(page: str, site: Path) -> bool:
    """Install the plugin package whose files a page shows, the way pip lays one out."""
    files = _file_blocks(page)
    if "pyproject.toml" not in files:
        return False
    project = tomllib.loads(files["pyproject.toml"].code)["project"]
    points = project.get("entry-points", {})
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (dist / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items())
            for group, names in points.items()
        )
    )
    for name, block in files.items():
        if name.startswith("src/"):
            target = site / name.removeprefix("src/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
    return True


def _compares_evaluate(page: str) -> bool:
    """Whether the page shows output of ``lenet5 evaluate`` that the runner compares."""
    return any(
        doc_blocks.plan(c).action == "compare" and " evaluate " in f" {c.text} "
        for b in BLOCKS[page]
        if b.language == "console"
        for c in doc_blocks.commands(b)
    )


@dataclass
class Workspace:
    cwd: Path
    env: dict[str, str]


@pytest.fixture
def workspace(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pictures: Path,
    data_folders: Callable[[int, int | None], Path],
    hub_checkout: Path,
    hf_cache: Path,
) -> Callable[..., Workspace]:
    def make(page: str, *, full_test: bool = False) -> Workspace:
        text = _text(page)
        code = "".join(b.code for b in BLOCKS[page] if b.is_python or b.language == "console")
        test_images = None if full_test or _compares_evaluate(page) else TEST_IMAGES
        small = data_folders(TRAIN_IMAGES, test_images)
        (tmp_path / "shared").mkdir()
        link = tmp_path / "shared" / "data"
        link.symlink_to(small)
        # The runner points the link at more training images for code that holds some out.
        switch = {"DOC_TEST_DATA_LINK": str(link), "DOC_TEST_DATA_SMALL": str(small)}
        if held := doc_blocks.held_out(code, 60000 - TRAIN_IMAGES):
            switch["DOC_TEST_DATA_LARGE"] = str(data_folders(TRAIN_IMAGES + held, test_images))
        cwd = tmp_path / "work"
        shutil.copytree(pictures, cwd)
        if hasattr(os, "mkfifo"):  # predict.rst shows a named pipe being refused
            os.mkfifo(cwd / "fifo.png")
        (cwd / ".venv").symlink_to(sys.prefix)
        for placeholder in set(_PLACEHOLDER.findall(text)):
            (cwd / placeholder).parent.mkdir(parents=True, exist_ok=True)
            (cwd / placeholder).symlink_to(hub_checkout)
        made = set(_MADE_RUN.findall(text))
        for run in set(_RUN_FOLDER.findall(text)) - made:
            if f'from_pretrained("{run}' in text or f"--weights {run}" in text:
                shutil.copytree(request.getfixturevalue("trained_run"), cwd / run)
        torch_home = tmp_path / "torch-home"
        (torch_home / "hub").mkdir(parents=True)
        for branch in ("main", "master"):
            (torch_home / "hub" / f"lenet5_lenet5_{branch}").symlink_to(hub_checkout)
        env = dict(os.environ)
        for name in ("LENET5_DATA_DIR", "LENET5_FASHION_DATA_DIR", "HF_TOKEN"):
            env.pop(name, None)
        site = tmp_path / "site"
        paths = [str(REPO / "tests")]
        if _install_plugin(page, site):
            paths.insert(0, str(site))
        env.update(
            switch,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
            MPLBACKEND="Agg",
            TORCH_HOME=str(torch_home),
            HF_HUB_CACHE=str(hf_cache),
            HF_HUB_OFFLINE="1",
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        return Workspace(cwd, env)

    return make


# --------------------------------------------------------------------------- running pages


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs(page: str, workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    """Every Python block and lenet5 command of the page runs, and shown outputs match."""
    space = workspace(page)
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests/doc_blocks.py"),
            str(REPO / page),
            str(report),
            str(REPO),
        ],
        cwd=space.cwd,
        env=space.env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    outcomes = json.loads(report.read_text()) if report.exists() else []
    log = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"the runner itself failed:\n{log}"
    expected = sum(
        1 if b.is_python else len(doc_blocks.commands(b))
        for b in BLOCKS[page]
        if b.is_python or b.language == "console"
    )
    assert len(outcomes) == expected, f"{len(outcomes)} of {expected} blocks reported:\n{log}"
    for o in outcomes:  # shown with -rP: what ran, how long it took
        print(
            f"{page}:{o['line']} {o['kind']} {o['status']} {o['seconds']:.1f}s {o['detail'][:90]!r}"
        )
    failed = [o for o in outcomes if o["status"] == "failed"]
    assert not failed, "\n\n".join(
        f"{page}:{o['line']} ({o['kind']}):\n{o['detail']}" for o in failed
    )


def test_readme_main_job_evaluates_default_to_the_accuracy_it_states(
    workspace: Callable[..., Workspace],
) -> None:
    """The README's first command ends with ``lenet5 evaluate``; its comment states the
    accuracy. Run as written (in a checkout's folder), it prints that accuracy: the registry's."""
    first = next(b for b in BLOCKS["README.md"] if b.language == "bash")
    comment, command = first.code.splitlines()[:2]
    stated = re.search(r"\((\d+\.\d+)%\)", comment)
    assert stated, comment
    evaluate = command.split("&&")[-1].strip()
    assert evaluate.startswith(".venv/bin/lenet5 evaluate"), evaluate
    space = workspace("README.md", full_test=True)
    result = subprocess.run(
        ["bash", "-c", evaluate],
        cwd=space.cwd,
        env=space.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Final | Test Accuracy: {stated[1]}%"
    assert float(stated[1]) == REGISTRY[DEFAULT].test_accuracy


# --------------------------------------------------------------------------- type checking


#: Untyped functions the docs call: torch.hub.load, torch.jit.load.
_UNTYPED = ("torch.hub", "torch.jit")


def _untyped_calls_exclude() -> list[str]:
    """mypy options that let the docs call torch's untyped loaders under ``--strict``, as a
    strict user's configuration would. The project's configuration may exclude them itself;
    otherwise the option is given here, and as it changes what mypy caches, these runs then
    keep a cache of their own (so that they do not invalidate that of ``mypy src/``)."""
    with open(REPO / "pyproject.toml", "rb") as f:
        configured = tomllib.load(f).get("tool", {}).get("mypy", {})
    if set(_UNTYPED) <= set(configured.get("untyped_calls_exclude", [])):
        return []
    return [
        *(f"--untyped-calls-exclude={name}" for name in _UNTYPED),
        *("--cache-dir", str(REPO / ".mypy_cache" / "docs")),
    ]


@pytest.fixture(scope="session")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """``mypy --strict`` over each page's Python blocks (one module per page), in one call."""
    folder = tmp_path_factory.mktemp("doc-mypy")
    files: dict[str, str] = {}
    for page in PAGES:
        if not any(b.is_python for b in BLOCKS[page]):
            continue
        name = "doc_" + re.sub(r"\W", "_", Path(page).stem.lower()) + ".py"
        (folder / name).write_text(doc_blocks.page_module(BLOCKS[page]))
        files[name] = page
    result = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--config-file",
                str(REPO / "pyproject.toml"),
            ),
            *_untyped_calls_exclude(),
            *("--no-error-summary", "--show-error-codes", *(str(folder / n) for n in files)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    errors: dict[str, list[str]] = {page: [] for page in files.values()}
    for line in result.stdout.splitlines():
        file, _, rest = line.partition(":")
        if Path(file).name in files and ": error:" in rest:
            errors[files[Path(file).name]].append(f"{files[Path(file).name]}:{rest}")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return errors


# One mypy run for every page: with ``pytest -n N --dist loadgroup`` these tests share a
# worker (each worker would run mypy, a session fixture, once).
@pytest.mark.slow
@pytest.mark.xdist_group("docs_mypy")
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.is_python for b in BLOCKS[p])])
def test_page_code_type_checks_strictly(page: str, mypy_errors: dict[str, list[str]]) -> None:
    assert not mypy_errors[page], "\n".join(mypy_errors[page])


# --------------------------------------------------------------------------- callback names


@functools.cache
def _info_callbacks() -> dict[str, str]:
    """``lenet5 info``'s callback names, with where each comes from."""
    code, printed = _lenet5("info")
    assert code == 0, printed
    line = next(x for x in printed.splitlines() if x.startswith("callbacks: "))
    return dict(re.findall(r"(\w+) \(([^)]+)\)", line))


def _claimed_builtins(page: str) -> list[set[str]]:
    """Each list of built-in callback names the page gives: the sentences that name "the
    built-in names" or what "can be created by name", and ``lenet5 info``'s callback lines."""
    found: list[set[str]] = []
    prose = re.sub(r"\s+", " ", _text(page))
    for sentence in re.split(r"(?<=\.)\s+(?=[A-Z`])", prose):
        if re.search(r"built-in names|created by name", sentence):
            names = set(re.findall(r"``([a-z][a-z0-9_]*)``", sentence))
            if names:
                found.append(names)
    for line in _text(page).splitlines():
        if line.strip().startswith("callbacks: "):
            found.append(set(re.findall(r"(\w+) \(built-in\)", line)))
        if match := re.search(r"known callbacks: ([\w, ]+)", line):
            found.append({n.strip() for n in match[1].split(",")} - _plugin_names())
    return found


def _plugin_names() -> set[str]:
    """Callback names that the docs' own plugin packages register."""
    names: set[str] = set()
    for page in PAGES:
        toml = _file_blocks(page).get("pyproject.toml")
        if toml:
            points = tomllib.loads(toml.code)["project"].get("entry-points", {})
            names |= set(points.get("lenet5.callbacks", {}))
    return names


def _string_arguments(tree: ast.AST) -> set[str]:
    """The strings in ``callbacks=[...]`` lists and ``create_callback(...)`` calls."""
    names: set[str] = set()
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg == "callbacks":
            values = list(getattr(node.value, "elts", []))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "create_callback":
            values = node.args
        names |= {
            v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        }
    return names


def _named_in_code() -> dict[str, set[str]]:
    """Callback names the docs' code passes: ``callbacks=[..., "name"]``,
    ``create_callback("name")`` and ``--callbacks a,b``; by where."""
    found: dict[str, set[str]] = {}
    for page in PAGES:
        for block in BLOCKS[page]:
            names: set[str] = set()
            if block.is_python:
                source = "\n".join(text for _, text in doc_blocks.python_source(block))
                names |= _string_arguments(ast.parse(source))
            elif block.language == "console":
                for command in doc_blocks.commands(block):
                    for match in re.findall(r"--callbacks (\S+)", command.text):
                        names |= set(match.split(","))
            if names:
                found[block.where] = names
    return found


def test_lenet5_info_lists_the_builtin_callbacks() -> None:
    builtin = {name for name, origin in _info_callbacks().items() if origin == "built-in"}
    assert builtin == set(BUILTIN)


@pytest.mark.parametrize("page", [p for p in PAGES if _claimed_builtins(p)])
def test_the_builtin_callback_names_a_page_gives_are_lenet5_infos(page: str) -> None:
    builtin = {name for name, origin in _info_callbacks().items() if origin == "built-in"}
    for claimed in _claimed_builtins(page):
        assert claimed == builtin, f"{page} names {sorted(claimed)}; lenet5 info: {sorted(builtin)}"


@pytest.mark.parametrize(
    ("where", "names"), sorted(_named_in_code().items()), ids=sorted(_named_in_code())
)
def test_callback_names_in_the_docs_code_resolve(where: str, names: set[str]) -> None:
    plugins = _plugin_names()
    for name in sorted(names):
        if name in plugins:
            continue  # made by the docs' own plugin: the plugins page runs it installed
        assert isinstance(create_callback(name), Callback), (where, name)
