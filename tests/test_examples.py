"""The examples of ``examples/``: every script runs to its result, and is a gallery page.

The scripts run once per check: in the docs build, where sphinx-gallery executes each one
with the flags of ``examples/_gallery.py`` (a short run on a few hundred images), and
makes its page of what it printed and drew (tests/built_docs.py: one build per test
session, started as the session starts). ``examples/_gallery.py`` records each run: its
flags (``--data-dir`` and ``--out`` besides the page's), its ``--out`` folder, what it left
in its working folder. For each script the test reads that record and the built page: the
script ran with its page's flags, raised nothing (a script that fails shows its
traceback in the test and fails the build), wrote only under ``--out`` (its figures
among it, as PNG files), its page shows the figures it drew and its output, whose last
line is its result line: for most, ``test accuracy: 84.20%`` (several percentages for the
scripts that compare runs), each above the floor set for it below. Chance is 10%, and the
floors sit well below what the scripts reach on the build's subsets (about 64-90%).

Every script must have an entry in :data:`RECIPES` and one in the gallery's
``examples/_gallery.py`` (the flags its page is built with), be in a section that
``docs/conf.py`` orders, have the form of a gallery page, and be linked from
``docs/recipes.rst``; so a new example without a test, or outside the gallery, fails.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from built_docs import DocsBuild

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
RECIPES_PAGE = REPO / "docs" / "recipes.rst"
CONF = REPO / "docs" / "conf.py"
#: The largest run the gallery may make of a script that trains (a short run).
MOST_IMAGES, MOST_EPOCHS = 2048, 3
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
#: In a pattern of :attr:`Recipe.shows`, the script's ``--out`` folder.
OUT = "<OUT>"


@dataclass(frozen=True)
class Recipe:
    """What a script's run must show."""

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
    #: The data folder comes from the environment (``LENET5_DATA_DIR``, or
    #: ``LENET5_FASHION_DATA_DIR`` for Fashion-MNIST), not from ``--data-dir``.
    data_dir_from_env: bool = False


#: Every script of examples/, by name, with what its run on the gallery's flags shows.
#: Measured: accumulation 64% (16 steps of 128), the others 78-90% (mixup 84%,
#: distillation's student 79%, its teacher 89%; lr_sweep 84% with the rate chosen on
#: validation). The bundled weights score 99.36%.
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
    # 1,024 images, 2 epochs of batches of 32.
    "grad_clipping": Recipe(shows=(r"^64 steps, clipped to 1\.0 in \d+\.\d% of them$",)),
    "bf16": Recipe(shows=(r"32 +\d+\.\d\d% +\d+\.\d s", r"bf16-mixed +\d+\.\d\d% +\d+\.\d s")),
    # The two runs take the same 16 steps: their weights differ by rounding (below 1e-4).
    "accumulation": Recipe(
        floor=30.0,
        shows=(
            r"^batch 32 x 4: 16 steps ",
            r"^batch 128 x 1: 16 steps ",
            r"largest weight difference: \d\.\de-(0[5-9]|[1-9]\d)",
        ),
    ),
    "compile": Recipe(
        shows=(r"^epoch 1: .* s \(includes the compilation\)$", r"^epoch 2: \d+\.\d\d s$"),
    ),
    "tensorboard_logging": Recipe(
        shows=(rf"tensorboard --logdir {OUT}$", r"'epoch/val_accuracy'", r"'step/loss'"),
    ),
    "lr_sweep": Recipe(shows=(r"^1e-02 +\d+\.\d{4} +\d+\.\d\d%$",)),
    "custom_model": Recipe(shows=(r"test image 0: label 7, predicted \d \(\d+\.\d%\)",)),
    # Fashion-MNIST's T-shirt/top, Trouser and Sneaker: chance is 33%.
    "finetune_fashion3": Recipe(
        data_dir_from_env=True,
        floor=50.0,
        shows=(
            r"^loaded back: 3 classes [\[(]'T-shirt/top', 'Trouser', 'Sneaker'[\])], "
            r"same logits: True$",
        ),
    ),
}


def _scripts() -> dict[str, Path]:
    """Every example script by name (``examples/SECTION/NAME.py``; ``_*`` are helpers)."""
    return {p.stem: p for p in sorted(EXAMPLES.glob("*/*.py")) if not p.name.startswith("_")}


def _page_outputs(page: str) -> tuple[list[str], list[str]]:
    """What a gallery page shows a script printed, block by block, and the tracebacks it
    shows (sphinx-gallery writes a failing script's traceback in its page)."""
    found = re.findall(
        r'<div class="sphx-glr-script-out highlight-(\w+)[^"]*"><div class="highlight"><pre>'
        r"(.*?)</pre>",
        page,
        re.S,
    )
    shown: dict[str, list[str]] = {"none": [], "pytb": []}
    for kind, block in found:
        shown.setdefault(kind, []).append(html.unescape(re.sub(r"<[^>]+>", "", block)))
    return shown["none"], shown["pytb"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_example_runs_to_its_result(name: str, gallery_runs: DocsBuild, mnist_dir: Path) -> None:
    recipe, path = RECIPES[name], _scripts()[name]
    script = f"examples/{path.relative_to(EXAMPLES)}"
    assert gallery_runs.runs is not None
    record_file = gallery_runs.runs / f"{name}.json"
    page_file = gallery_runs.html / "gallery" / path.parent.name / f"{name}.html"
    page = page_file.read_text(encoding="utf-8") if page_file.exists() else ""
    printed, tracebacks = _page_outputs(page)
    assert not tracebacks, f"{script} failed in the docs build:\n" + "\n".join(tracebacks)
    assert record_file.exists(), (
        f"{script} did not run in the docs build; its output:\n{gallery_runs.log[-6000:]}"
    )
    record = json.loads(record_file.read_text())
    print(f"{script}: {record['seconds']:.1f} s in the docs build")  # pytest -s or -rP
    assert record["script"] == script

    # It ran with its page's flags (a short run), its data folder given as the recipe says.
    flags = list(_gallery().GALLERY_ARGS[name])
    out = (gallery_runs.runs / name).resolve()
    data = []
    if recipe.reads_data and not recipe.data_dir_from_env:
        data = ["--data-dir", str(mnist_dir.resolve())]
    assert record["argv"] == [*flags, *data, "--out", str(out)], record["argv"]
    if recipe.trains:
        images, epochs = int(_flag(flags, "--subset")), int(_flag(flags, "--epochs"))
        assert images <= MOST_IMAGES, f"{name}: not a short run"
        assert epochs <= MOST_EPOCHS, f"{name}: not a short run"

    # What it printed: the result line last, and what the recipe shows.
    lines = "\n".join(printed).splitlines()
    last = "\n".join(printed).strip().splitlines()[-1] if "".join(printed).strip() else ""
    assert re.search(recipe.result, last), f"last line {last!r}:\n" + "\n".join(lines)
    if recipe.floor is not None:
        accuracies = [float(v) for v in _PERCENT.findall(last)]
        assert accuracies, last
        assert all(recipe.floor < a <= 100.0 for a in accuracies), (last, recipe.floor)
    for pattern in recipe.shows:
        pattern = pattern.replace(OUT, re.escape(str(out)))
        assert any(re.search(pattern, line) for line in lines), (pattern, "\n".join(lines))

    # What it wrote: only under --out, its figures among it, and its page shows them.
    assert out.is_dir(), f"{script} wrote nothing under --out"
    assert list(out.rglob("*.png")), f"{script} saved no figure under --out"
    assert record["left_in_cwd"] == [], f"{script} wrote outside --out: {record['left_in_cwd']}"
    figures = re.findall(rf'<img src="\.\./\.\./_images/(sphx_glr_{name}_\d+\.png)"', page)
    assert figures, f"the page of {script} shows no figure"
    for figure in figures:
        assert (gallery_runs.html / "_images" / figure).is_file(), figure


def _flag(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing in {argv}"
    return argv[argv.index(flag) + 1]


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
