"""``lenet5 export``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import needs_onnx


@needs_onnx
def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lenet5.cli import main

    out = tmp_path / "with space" / "model.onnx"
    assert main(["export", "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file()
    assert "dynamic batch" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["export", "--format", "onnx", "--out", str(tmp_path)])
    assert exit.value.code == 2
    assert "is a folder" in capsys.readouterr().err
