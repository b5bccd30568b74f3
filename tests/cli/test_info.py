"""``lenet5 info``: versions, data folders (named by their content), weights, callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

import lenet5
from cli_helpers import finish, run_main, start
from lenet5.cli import main


def test_info(mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lenet5 {lenet5.__version__}")
    assert f"mnist data: {mnist_dir}" in out
    assert "early_stopping (built-in)" in out


def test_info_names_versions_data_weights_and_callbacks(
    mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main("info", "--data-dir", mnist_dir) == 0
    stdout = capsys.readouterr().out
    assert "lenet5 " in stdout
    assert "torch " in stdout
    assert f"mnist data: {mnist_dir}" in stdout
    assert "weights DEFAULT" in stdout
    assert "callbacks:" in stdout


def test_info_names_each_data_folder_by_its_content(
    mnist_dir: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    for folder, dataset, other in ((mnist_dir, "mnist", "fashion-mnist"),
                                   (fashion_dir, "fashion-mnist", "mnist")):  # fmt: skip
        code, out, err = finish(start(["info", "--data-dir", folder], cwd=tmp_path))
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert f"{dataset} data: {folder}" in lines
        assert f"{other} data: not found ({folder} holds the {dataset} files, by their MD5)" in (
            lines
        )
