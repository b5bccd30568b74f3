"""Day-one use of the CLI: plots, info, failures that corrupt nothing.

The cases call ``lenet5.cli.main`` in this process (a subprocess costs seconds of imports);
Ctrl-C, other signals and the other hostile cases, which need a real process, are in
test_hostile_cli.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import run_main

Runner = Callable[..., subprocess.CompletedProcess[str]]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    return lines[0]


def test_plots(tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plotted run"
    args = ("--data-dir", small_mnist_dir, "--epochs", "2", "--val-every", "1", "--plot")
    assert run_main("train", *args, "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "Summary" in stdout
    assert "test accuracy" in stdout
    for name in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as image:
            assert image.width > 300
            assert image.height > 200
    figures = tmp_path / "eval figures"
    assert (
        run_main("evaluate", "--weights", out, "--data-dir", small_mnist_dir, "--plot", figures)
        == 0
    )
    assert (figures / "confusion_matrix.png").is_file()
    assert (figures / "misclassified.png").is_file()


def test_info(mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("info", "--data-dir", mnist_dir) == 0
    stdout = capsys.readouterr().out
    assert "lenet5 " in stdout
    assert "torch " in stdout
    assert f"mnist data: {mnist_dir}" in stdout
    assert "weights DEFAULT" in stdout
    assert "callbacks:" in stdout


def test_python_dash_m_equals_console_script(run_cli: Runner) -> None:
    script = Path(sys.executable).with_name("lenet5")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    direct = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    module = run_cli("--help")
    assert module.stdout == direct.stdout


def test_failures_leave_earlier_results_untouched(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        run_main("train", "--data-dir", small_mnist_dir, "--epochs", "1", "--quiet", "--out", out)
        == 0
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    for args, code in (
        (("--callbacks", "no_such_callback"), 2),
        (("--epochs", "-3"), 2),
        (("--device", "cuda:99"), 1),
        (("--data-dir", tmp_path / "nowhere"), 1),
    ):
        assert run_main("train", "--resume", out, "--epochs", "2", *args) == code, args
        assert one_line_error(capsys).startswith("lenet5 train: error: ")
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_unwritable_output_folder(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    args = ("--data-dir", small_mnist_dir, "--epochs", "1", "--out", blocker / "run")
    assert run_main("train", *args) == 1
    line = one_line_error(capsys)
    assert "not writable" in line
    assert "--out" in line
