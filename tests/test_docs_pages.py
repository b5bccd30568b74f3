"""The built documentation as a reader sees it.

No page shows an error or warning box (and the build fails when one would), the model zoo
table is the weights registry, Python code fits the page's column, and the API reference
has one page per public module. The pages come from one ``sphinx-build -W`` of the real
``docs/`` per session (tests/built_docs.py), read as HTML.
"""

from __future__ import annotations

import html
import re
import statistics
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lenet5.weights import DEFAULT, REGISTRY

REPO = Path(__file__).resolve().parent.parent
#: Characters of a code line that fit Furo's content column at a 1280-pixel window.
CODE_WIDTH = 88
#: What docutils and Sphinx write into a page for an error or warning they keep going past,
#: and a table of contents, which Furo's CSS paints as a red ERROR box.
ERROR_BOX = re.compile(
    r'class="[^"]*\b(system-message|problematic)\b'
    r'|class="(?![^"]*this-will-duplicate-information)[^"]*\bcontents\b'
)


def _pages(built: Path) -> list[Path]:
    """The documentation's pages (not the highlighted sources of ``_modules/``)."""
    return [p for p in sorted(built.rglob("*.html")) if p.relative_to(built).parts[0][0] != "_"]


class _Tables(HTMLParser):
    """The cells' text of every ``<table>`` with a given class, row by row."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.tables: list[list[list[str]]] = []
        self._depth = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and self.css_class in classes:
            self.tables.append([])
            self._depth = 1
        elif self._depth and tag == "tr":
            self.tables[-1].append([])
        elif self._depth and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._depth and tag == "table":
            self._depth = 0

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_no_page_shows_an_error_or_warning_box(built_docs: Path) -> None:
    pages = _pages(built_docs)
    assert len(pages) > 30  # the guide, the API reference per module, the gallery, the demo
    shown = {
        str(p.relative_to(built_docs)): m.group(0)
        for p in pages
        if (m := ERROR_BOX.search(p.read_text(encoding="utf-8")))
    }
    assert shown == {}


def test_the_build_fails_when_a_page_would_show_an_error_box(tmp_path: Path) -> None:
    """Furo turns ``.. contents::`` into a red ERROR box; the page check stops such a build."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(REPO / "docs" / "_ext")!r})
            extensions = ["lenet5_pagecheck"]
            html_theme = "furo"
            """
        )
    )
    (source / "index.rst").write_text(
        "Title\n=====\n\n.. contents:: On this page\n\nSection\n-------\n\nText.\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "built pages show error boxes" in result.stderr
    assert "index.html" in result.stderr


def _zoo_rows(built: Path) -> list[list[str]]:
    parser = _Tables("lenet5-zoo")
    parser.feed((built / "pretrained.html").read_text(encoding="utf-8"))
    (table,) = parser.tables
    return table


def test_the_model_zoo_table_is_the_registry(built_docs: Path) -> None:
    header, *rows = _zoo_rows(built_docs)
    assert header == [
        "Weights",
        "Dataset",
        "Test accuracy",
        "Mean over seeds",
        "Robustness (mCA)",
        "Parameters",
        "File size",
        "Recipe",
    ]
    assert [row[0].split()[0] for row in rows] == list(REGISTRY)
    titles = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
    for row, (name, w) in zip(rows, REGISTRY.items(), strict=True):
        assert row[0] == (f"{name} (DEFAULT)" if name == DEFAULT else name)
        assert row[1] == titles[w.dataset]
        assert row[2] == f"{w.test_accuracy:.2f}%"
        seeds = w.seed_accuracies
        if len(seeds) > 1:
            assert row[3] == f"{statistics.mean(seeds):.2f}% ± {statistics.stdev(seeds):.2f}"
        else:
            assert row[3] == "—"
        assert row[4] == f"{w.corruption_accuracy:.2f}%"
        assert row[5] == f"{w.num_params:,}"
        assert row[6] == f"{round(w.path.stat().st_size / 1024)} KiB"
        assert row[7] == "command"


def test_the_model_zoo_gives_every_recipe_command_verbatim(built_docs: Path) -> None:
    page = (built_docs / "pretrained.html").read_text(encoding="utf-8")
    blocks = [
        html.unescape(re.sub(r"<[^>]+>", "", block))
        for block in re.findall(r'<div class="highlight-bash[^"]*">.*?<pre>(.*?)</pre>', page, re.S)
    ]
    commands = {" ".join(b.replace("\\\n", " ").split()) for b in blocks}
    for name, w in REGISTRY.items():
        assert w.recipe is not None
        assert " ".join(w.recipe.split()) in commands, name
        assert f'id="zoo-{name}"' in page


def test_python_code_fits_the_column(built_docs: Path) -> None:
    """Code lines of Python blocks are at most 88 characters: they never scroll sideways."""
    too_long = []
    for page in _pages(built_docs):
        text = page.read_text(encoding="utf-8")
        for block in re.findall(
            r'<div class="highlight-python[^"]*">.*?<pre>(.*?)</pre>', text, re.S | re.I
        ):
            code = html.unescape(re.sub(r"<[^>]+>", "", block))
            if code.lstrip().startswith(">>>"):
                continue  # an interpreter session: its output is the real repr
            too_long += [
                f"{page.relative_to(built_docs)}: {line}"
                for line in code.splitlines()
                if len(line) > CODE_WIDTH
            ]
    assert too_long == []


def _public_modules() -> list[str]:
    src = REPO / "src"
    names = []
    for path in sorted((src / "lenet5").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts) or parts == ("lenet5", "callbacks"):
            continue  # private, or the old import path kept for compatibility (not documented)
        names.append(".".join(parts))
    return names


def test_the_api_reference_has_a_page_per_public_module(built_docs: Path) -> None:
    api = built_docs / "api"
    pages = {p.stem for p in api.glob("lenet5*.html")}
    index = (api / "index.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="module-(lenet5[\w.]*)"', index))
    for page in api.glob("lenet5*.html"):
        documented |= set(re.findall(r'id="module-(lenet5[\w.]*)"', page.read_text("utf-8")))
    assert [m for m in _public_modules() if m not in documented] == []
    assert len(pages) >= 20
    for module in pages:
        assert f'id="module-{module}"' in (api / f"{module}.html").read_text("utf-8")


@pytest.mark.parametrize("dataset", ["MNIST", "Fashion-MNIST"])
def test_the_robustness_tables_agree_with_the_registry(dataset: str) -> None:
    """The typed robustness tables (benchmarks/robustness.py's output) hold the records' mCA."""
    page = (REPO / "docs" / "pretrained.rst").read_text()
    table = page.split(f".. list-table:: Accuracy on the robustness suite ({dataset})", 1)[1]
    table = table.split("\n\n", 2)[1]
    names = re.findall(r"``([\w-]+)``", table.split("   * - clean", 1)[0])
    mca = table.split("   * - **mCA**\n", 1)[1]
    values = [float(v) for v in re.findall(r"- (\d+\.\d\d)%", mca)]
    assert names
    assert values == [REGISTRY[name].corruption_accuracy for name in names]
