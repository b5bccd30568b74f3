"""What several commands check the same way (lenet5.cli._common): devices, output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import one_line_error, run_main


def test_cli_device_meta_is_a_usage_error_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "x.png"
    for args in (
        ["train", "--data-dir", tmp_path, "--out", tmp_path / "run", "--device", "meta"],
        ["evaluate", "--data-dir", tmp_path, "--device", "meta"],
        ["predict", picture, "--device", "meta"],
    ):
        assert run_main(*args) == 2, args
        line = one_line_error(capsys.readouterr().err, str(args[0]))
        assert "meta" in line
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_be_made_names_itself_the_cause_and_the_flag(
    tmp_path: Path,
) -> None:
    from lenet5.cli._common import ensure_writable

    (tmp_path / "a file").write_text("")
    folder = tmp_path / "a file" / "plots"
    with pytest.raises(OSError, match="is not writable") as info:
        ensure_writable(folder, "--plot")
    assert str(info.value) == (
        f"output folder {folder} is not writable (Not a directory); choose another with --plot"
    )
