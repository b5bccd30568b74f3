"""The command line speaks in its own voice, and what it writes is strict JSON (#26).

Warnings are one line each, ``lenet5 COMMAND: warning: ...``, once per cause (a data
folder that is not the official release: one line, not four), never Python's
``file:line: UserWarning`` with a source line; a plugin that calls ``sys.exit()`` at
import is a failed plugin, not the end of the program; an empty IDX file's error names
the file; every JSON written (``results.json``, ``evaluate --json``) is strict.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from cli_helpers import NO_MD5_WARNING, one_line_error, run_main
from conftest import MNIST_FILES, write_idx
from lenet5 import LeNet5
from lenet5._io import dumps_json, loads_json
from lenet5.training.run import RunFolder

# Python's own warning format: "path/file.py:123: UserWarning: ..."
PYTHON_FORMAT = re.compile(r"\.py:\d+: \w*Warning")


def _strict(text: str) -> Any:
    """Parse ``text`` refusing NaN and the infinities, as jq and browsers do."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_an_unofficial_data_folder_is_one_warning_line(
    small_mnist_dir: Path, tmp_path: Path, run_cli: Any
) -> None:
    # A real process with Python's default warning filters: train reads four files of
    # the folder, none of them the official release's.
    result = run_cli(
        "train", "--data-dir", small_mnist_dir, "--epochs", "1", "--val-every", "0",
        "--batch-size", "256", "--quiet", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lenet5 train: warning: {small_mnist_dir}: ")
    assert "differ from the official mnist release" in lines[0]
    assert not PYTHON_FORMAT.search(result.stderr)
    assert "images, labels = " not in result.stderr  # no source line


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


def test_an_empty_idx_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mnist_dir: Path
) -> None:
    for name in MNIST_FILES:
        shape = (0,) if "labels" in name else (0, 28, 28)
        write_idx(tmp_path / name, torch.zeros(shape, dtype=torch.uint8))
    assert run_main("evaluate", "--data-dir", tmp_path, "--weights", "mnist-v1") == 1
    line = one_line_error(capsys.readouterr().err, "evaluate")
    assert f"{tmp_path / 't10k-images-idx3-ubyte.gz'}: holds no images" in line


def test_evaluate_json_of_a_diverged_model_is_strict(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tensors = {k: v.contiguous() for k, v in LeNet5().state_dict().items()}
    tensors["classifier.5.bias"] = torch.full((10,), float("inf"))
    weights = tmp_path / "diverged.safetensors"
    save_file(tensors, weights, metadata={"format": "pt"})
    args = ["evaluate", "--data-dir", small_mnist_dir, "--weights", weights, "--json"]
    assert run_main(*args, "--backend", "torch") == 0
    result = _strict(capsys.readouterr().out)
    assert result["test_loss"] is None
    assert result["non_finite"] == {"test_loss": "nan"}
    assert result["total"] == 1000


def test_results_json_is_strict_with_the_reason(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    history = [{"loss": 0.5}, {"loss": float("inf")}]
    run.write_results({"test_accuracy": 8.0, "test_loss": float("nan"), "history": history})
    written = _strict(run.results_file.read_text())
    assert written["test_loss"] is None
    assert written["history"] == [{"loss": 0.5}, {"loss": None}]
    assert written["non_finite"] == {"test_loss": "nan", "history[1].loss": "inf"}
    assert run.read_results()["test_accuracy"] == 8.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 10_000, "nested deeper than 32 levels"),
        ('{"a": Infinity}', "Infinity is not JSON"),
        ("{", "not valid JSON"),
    ],
)
def test_json_reads_are_bounded(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loads_json(text)
    assert loads_json(dumps_json({"x": [float("-inf")]})) == {
        "x": [None],
        "non_finite": {"x[0]": "-inf"},
    }
