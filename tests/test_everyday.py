"""Day-one use of the CLI: Ctrl-C and resume, plots, info, failures that corrupt nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from lenet5.weights import read_safetensors

Runner = Callable[..., subprocess.CompletedProcess[str]]
QUIET_MD5 = ["-W", "ignore::UserWarning"]  # the small data folder is not the official files


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(folder / "model.safetensors")[0]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(
    tmp_path: Path, small_mnist_dir: Path, run_cli: Runner
) -> None:
    common = ["--data-dir", str(small_mnist_dir), "--epochs", "12", "--quiet", "--device", "cpu"]
    straight = tmp_path / "straight"
    done = run_cli("train", *common, "--out", straight, python_flags=QUIET_MD5)
    assert done.returncode == 0, done.stderr

    interrupted = tmp_path / "interrupted run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, *QUIET_MD5, "-m", "lenet5", "train", *common, "--out", str(interrupted)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (interrupted / "checkpoints" / "latest").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Resume with:" in stderr
    assert "--resume" in stderr
    assert not (interrupted / "model.safetensors").exists()  # not mistaken for a finished run
    resumed = run_cli(
        "train", "--resume", interrupted, "--data-dir", small_mnist_dir, python_flags=QUIET_MD5
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (interrupted / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 12  # header + one row per epoch, none twice


def test_plots(tmp_path: Path, small_mnist_dir: Path, run_cli: Runner) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plotted run"
    result = run_cli(
        "train",
        "--data-dir",
        small_mnist_dir,
        "--epochs",
        "2",
        "--val-every",
        "1",
        "--plot",
        "--out",
        out,
        python_flags=QUIET_MD5,
    )
    assert result.returncode == 0, result.stderr
    assert "Summary" in result.stdout
    assert "test accuracy" in result.stdout
    for name in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as image:
            assert image.width > 300
            assert image.height > 200
    figures = tmp_path / "eval figures"
    result = run_cli(
        "evaluate",
        "--weights",
        out,
        "--data-dir",
        small_mnist_dir,
        "--plot",
        figures,
        python_flags=QUIET_MD5,
    )
    assert result.returncode == 0, result.stderr
    assert (figures / "confusion_matrix.png").is_file()
    assert (figures / "misclassified.png").is_file()


def test_info(run_cli: Runner, mnist_dir: Path) -> None:
    result = run_cli("info", "--data-dir", mnist_dir)
    assert result.returncode == 0, result.stderr
    assert "lenet5 " in result.stdout
    assert "torch " in result.stdout
    assert f"mnist data: {mnist_dir}" in result.stdout
    assert "weights DEFAULT" in result.stdout
    assert "callbacks:" in result.stdout


def test_python_dash_m_equals_console_script(run_cli: Runner) -> None:
    script = Path(sys.executable).with_name("lenet5")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    direct = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    module = run_cli("--help")
    assert module.stdout.replace("__main__.py", "lenet5") == direct.stdout


def test_failures_leave_earlier_results_untouched(
    tmp_path: Path, small_mnist_dir: Path, run_cli: Runner
) -> None:
    out = tmp_path / "run"
    first = run_cli(
        "train",
        "--data-dir",
        small_mnist_dir,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out,
        python_flags=QUIET_MD5,
    )
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for args in (
        ("--callbacks", "no_such_callback"),
        ("--device", "cuda:99"),
        ("--data-dir", tmp_path / "nowhere"),
    ):
        result = run_cli("train", "--resume", out, "--epochs", "2", *args, python_flags=QUIET_MD5)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_unwritable_output_folder(tmp_path: Path, small_mnist_dir: Path, run_cli: Runner) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    result = run_cli(
        "train",
        "--data-dir",
        small_mnist_dir,
        "--epochs",
        "1",
        "--out",
        blocker / "run",
        python_flags=QUIET_MD5,
    )
    assert result.returncode == 1
    assert "not writable" in result.stderr
    assert "--out" in result.stderr
    assert "Traceback" not in result.stderr
