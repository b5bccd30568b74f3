"""Callback plugins from real installed distributions (entry-point group ``lenet5.callbacks``).

The distributions are built by hand in a temporary folder (a package plus ``.dist-info``
folders, as pip would leave them) and put on ``sys.path``: ``lenet5_test_plugin`` provides
a working ``recorder``, ``broken_plugin`` declares ``broken``, whose module does not exist.
"""

from __future__ import annotations

import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import NO_MD5_WARNING, one_line_error
from helpers import REPO
from lenet5 import ImageSet, Trainer
from lenet5.cli import main
from lenet5.training import (
    ENTRY_POINT_GROUP,
    CallbackError,
    EarlyStopping,
    Timer,
    available_callbacks,
    create_callback,
)
from lenet5.training.plugins import BUILTIN

#: The docs page, and the title of its section, whose table lists the built-in names.
NAMES_PAGE, NAMES_SECTION = "docs/callbacks.rst", "Built-in callback names"

PLUGIN_MODULE = "lenet5_test_plugin"

PLUGIN_SOURCE = '''
"""A third-party callback package, as a user would write one."""

from lenet5 import Callback


class Recorder(Callback):
    """Remembers the epochs it saw and reports at the end of the fit."""

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, state):
        self.epochs.append(state.epoch)

    def on_fit_end(self, state):
        print(f"recorder plugin saw epochs {self.epochs}", flush=True)


def junk():
    """Callable, but returns something that is not a callback."""
    return object()
'''


def write_dist(site: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like a site-packages holding the two plugin distributions."""
    site = tmp_path_factory.mktemp("site")
    (site / PLUGIN_MODULE).mkdir()
    (site / PLUGIN_MODULE / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    write_dist(
        site,
        PLUGIN_MODULE,
        "0.1",
        {"recorder": f"{PLUGIN_MODULE}:Recorder", "junk": f"{PLUGIN_MODULE}:junk"},
    )
    write_dist(site, "broken_plugin", "0.2", {"broken": "lenet5_test_plugin_missing:Nope"})
    return site


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin distributions on ``sys.path`` for one test."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    sys.modules.pop(PLUGIN_MODULE, None)


def test_no_plugins_without_the_distributions() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = available_callbacks()
    assert "recorder" not in names
    assert names["early_stopping"] == "built-in"
    with pytest.raises(CallbackError, match="unknown callback 'recorder'"):
        create_callback("recorder")


@pytest.mark.usefixtures("installed")
def test_trainer_uses_the_plugin(tiny_train: ImageSet, capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken distribution must not matter here
        trainer = Trainer(callbacks=["recorder"], epochs=2, verbose=False, device="cpu")
        plugin = [cb for cb in trainer.callbacks if type(cb).__module__ == PLUGIN_MODULE]
        assert len(plugin) == 1
        assert type(plugin[0]).__name__ == "Recorder"
        trainer.fit(tiny_train)
    recorder: Any = plugin[0]
    assert recorder.epochs == [1, 2]
    assert "recorder plugin saw epochs [1, 2]" in capsys.readouterr().out


@pytest.mark.usefixtures("installed")
def test_plugins_mix_with_objects_and_builtins(tiny_train: ImageSet) -> None:
    stopper = EarlyStopping()
    trainer = Trainer(callbacks=["recorder", stopper, "timer"], verbose=False, device="cpu")
    modules = [type(cb).__module__ for cb in trainer.callbacks]
    assert modules.count(PLUGIN_MODULE) == 1
    assert stopper in trainer.callbacks


@pytest.mark.usefixtures("installed")
def test_available_callbacks_lists_plugins_and_warns_about_broken_ones() -> None:
    with pytest.warns(RuntimeWarning, match="broken_plugin") as record:
        names = available_callbacks()
    assert names["recorder"] == f"{PLUGIN_MODULE} 0.1"
    assert names["early_stopping"] == "built-in"
    assert "broken" not in names
    broken = [str(w.message) for w in record if "broken_plugin" in str(w.message)]
    assert len(broken) == 1
    assert "'broken'" in broken[0]
    assert "lenet5_test_plugin_missing" in broken[0]


@pytest.mark.usefixtures("installed")
def test_asking_for_the_broken_plugin_names_its_distribution() -> None:
    with pytest.raises(CallbackError, match=r"'broken' from broken_plugin 0\.2 failed to import"):
        Trainer(callbacks=["broken"])


@pytest.mark.usefixtures("installed")
def test_plugin_returning_a_non_callback() -> None:
    with pytest.raises(CallbackError, match=r"not a lenet5\.Callback"):
        create_callback("junk")


@pytest.mark.usefixtures("installed")
def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(CallbackError) as excinfo:
        Trainer(callbacks=["recorderr"])
    message = str(excinfo.value)
    assert "unknown callback 'recorderr'" in message
    assert "did you mean 'recorder'?" in message
    for known in (*BUILTIN, "recorder", "broken"):
        assert known in message
    assert ENTRY_POINT_GROUP in message


def test_cli_uses_the_plugin(
    plugin_site: Path,
    small_mnist_dir: Path,
    tmp_path: Path,
    run_cli: Callable[..., Any],
) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "--data-dir",
        small_mnist_dir,
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--callbacks",
        "recorder",
        "--out",
        out,
        pythonpath=[plugin_site],
        python_flags=["-W", "ignore::UserWarning"],  # the subset files fail the MD5 check
    )
    assert result.returncode == 0, result.stderr
    assert "recorder plugin saw epochs [1]" in result.stdout
    assert "Final | Test Accuracy:" in result.stdout
    assert (out / "model.safetensors").is_file()


@pytest.mark.usefixtures("installed")
def test_cli_broken_plugin_fails_with_one_line(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data-dir", str(mnist_dir), "--epochs", "1", "--callbacks", "broken"]
    try:
        code = main([*args, "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # usage errors leave through argparse's exit
        code = exc.code  # type: ignore[assignment]
    # The command line is right; the installed plugin is broken: a failure (1), not a
    # usage error (2), explained in one line.
    assert code == 1, code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lenet5 train: error:")
    assert "broken_plugin" in lines[0]


@pytest.mark.usefixtures("installed")
def test_cli_info_lists_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    assert f"recorder ({PLUGIN_MODULE} 0.1)" in captured.out
    # The CLI's own voice: one line on stderr, never Python's file:line format.
    assert re.search(r"^lenet5 info: warning: .*broken_plugin", captured.err, re.MULTILINE)


# --------------------------------------------------------------------------- docs vs info


def _info_builtins(run_cli: Callable[..., Any]) -> set[str]:
    """The names ``lenet5 info`` (a real process) marks ``(built-in)`` on its callbacks line."""
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if x.startswith("callbacks: ")]
    assert len(lines) == 1, result.stdout
    return {n for n, origin in re.findall(r"(\w+) \(([^)]+)\)", lines[0]) if origin == "built-in"}


def _doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.rst"))]


def _table_names(page: Path, section_title: str) -> list[str] | None:
    """The first column of the first table in the section titled ``section_title``, read
    by docutils (Sphinx's roles are unknown to it: those messages are silenced), or ``None``
    when the page has no such section."""
    from docutils import nodes
    from docutils.core import publish_doctree

    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False}
    tree = publish_doctree(page.read_text(encoding="utf-8"), settings_overrides=settings)
    sections = [
        s
        for s in tree.findall(nodes.section)
        if isinstance(s[0], nodes.title) and s[0].astext() == section_title
    ]
    if not sections:
        return None
    assert len(sections) == 1, f"{page.name}: {len(sections)} sections {section_title!r}"
    table = next(sections[0].findall(nodes.table), None)
    assert table is not None, f"{page.name}: section {section_title!r} has no table"
    tbody = next(table.findall(nodes.tbody))
    return [row[0].astext().strip() for row in tbody.findall(nodes.row)]


def _shown_info_lines(page: Path) -> list[set[str]]:
    """The built-in names of each ``lenet5 info`` callbacks line the page shows."""
    return [
        set(re.findall(r"(\w+) \(built-in\)", line))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("callbacks: ")
    ]


def test_the_docs_table_of_builtin_names_is_what_lenet5_info_prints(
    run_cli: Callable[..., Any],
) -> None:
    """A name added to BUILTIN without the docs' table, or to the table without BUILTIN,
    fails here; so does a ``lenet5 info`` output shown anywhere in the docs that is out of
    date."""
    info = _info_builtins(run_cli)
    assert info == set(BUILTIN)
    tables = {
        page.name: names
        for page in _doc_pages()
        if page.suffix == ".rst" and (names := _table_names(page, NAMES_SECTION)) is not None
    }
    assert list(tables) == [Path(NAMES_PAGE).name], f"{NAMES_SECTION!r} tables: {list(tables)}"
    documented = tables[Path(NAMES_PAGE).name]
    assert len(documented) == len(set(documented)), documented
    assert set(documented) == info, f"{NAMES_PAGE}: {sorted(documented)}; info: {sorted(info)}"
    shown = {page.name: _shown_info_lines(page) for page in _doc_pages()}
    for page, lines in shown.items():
        for names in lines:
            assert names == info, f"{page} shows lenet5 info with built-ins {sorted(names)}"


# --------------------------------------------------- names and plugins that cannot be used


def test_builtin_callbacks_by_name() -> None:
    trainer = Trainer(callbacks=["early_stopping", "timer"])
    assert sum(isinstance(cb, EarlyStopping) for cb in trainer.callbacks) == 1
    assert sum(isinstance(cb, Timer) for cb in trainer.callbacks) == 1  # replaced the default


def test_plugins_that_are_not_callbacks_or_cannot_be_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenet5.training import ENTRY_POINT_GROUP, create_callback

    (tmp_path / "edge_plugins.py").write_text(
        "NOT_A_CLASS = 42\n\nclass Fussy:\n    def __init__(self):\n"
        "        raise RuntimeError('needs a token')\n"
    )
    info = tmp_path / "edge_plugins-0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edge-plugins\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nnumber = edge_plugins:NOT_A_CLASS\nfussy = edge_plugins:Fussy\n"
    )
    (info / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CallbackError) as info_number:
        create_callback("number")
    assert str(info_number.value) == (
        "plugin callback 'number' from edge-plugins 0.2 points at 42, which is not a callback class"
    )
    with pytest.raises(CallbackError, match=r"^plugin callback 'fussy' from edge-plugins 0.2 "
                       r"could not be created: needs a token$"):  # fmt: skip
        create_callback("fussy")


PLUGIN = "lenet5_exiting_plugin"


def _install_exiting_plugin(site: Path) -> Path:
    """A distribution whose callback module calls ``sys.exit(3)`` when imported."""
    site.mkdir()
    (site / f"{PLUGIN}.py").write_text("import sys\nsys.exit(3)\n")
    info = site / "lenet5_exiting_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exiting\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lenet5.callbacks]\nexiting = {PLUGIN}:Callback\n")
    (info / "RECORD").write_text("")
    return site


def test_a_plugin_that_exits_at_import_is_a_failed_plugin(
    tmp_path: Path, small_mnist_dir: Path, run_cli: Any
) -> None:
    site = _install_exiting_plugin(tmp_path / "site")
    info = run_cli("info", pythonpath=[site])
    assert info.returncode == 0, info.stderr
    assert "callbacks: " in info.stdout
    warning = [line for line in info.stderr.splitlines() if "exiting" in line]
    assert len(warning) == 1, info.stderr
    assert warning[0].startswith("lenet5 info: warning: plugin callback 'exiting'")
    assert "failed to import (SystemExit: 3)" in warning[0]

    out = tmp_path / "run"
    train = run_cli(
        "train", "--data-dir", small_mnist_dir, "--callbacks", "exiting", "--out", out,
        pythonpath=[site], python_flags=NO_MD5_WARNING,
    )  # fmt: skip
    assert train.returncode == 1, train.stderr
    line = one_line_error(train.stderr, "train")
    assert "plugin callback 'exiting'" in line
    assert "SystemExit: 3" in line
    assert not out.exists()  # refused before the run folder was made
