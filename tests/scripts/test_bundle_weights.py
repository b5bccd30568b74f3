"""scripts/bundle_weights.py: a run folder of lenet5 train made a bundled weight set."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import REPO


@pytest.mark.filterwarnings("ignore::UserWarning")  # the small data folder fails the MD5 check
def test_bundle_weights_reads_the_run_folder(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import hashlib
    import runpy

    from lenet5.weights import read_safetensors

    script = REPO / "scripts" / "bundle_weights.py"
    bundle = runpy.run_path(str(script))
    monkeypatch.setitem(bundle["main"].__globals__, "PRETRAINED", tmp_path)
    argv = ["bundle_weights.py", str(trained_run[0]), "test-v1", "--recipe", "lenet5 train ..."]
    monkeypatch.setattr("sys.argv", [*argv, "--data-dir", str(small_mnist_dir)])
    bundle["main"]()
    out = capsys.readouterr().out
    written = tmp_path / "test-v1.safetensors"
    assert f"sha256={hashlib.sha256(written.read_bytes()).hexdigest()!r}" in out
    assert f"file_size={written.stat().st_size}" in out
    assert "'test-v1': Weights(" in out
    assert "# trained with: " in out
    header = read_safetensors(written)[1]
    assert header["dataset"] == "mnist"
    assert header["recipe"] == "lenet5 train ..."
    assert json.loads(header["classes"]) == [str(d) for d in range(10)]
