"""The command line's voice (lenet5.cli._errors): every failure one line naming the file,
``--debug`` for the traceback, warnings as ``lenet5 COMMAND: warning: ...`` once per cause,
and a closed output pipe ending the command quietly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Runner, environment, finish, start
from lenet5.cli import UsageError, main


def test_every_error_becomes_one_line_naming_the_file() -> None:
    import zlib

    from lenet5._io import WriteError
    from lenet5.cli._errors import describe, doing
    from lenet5.data import DataError

    def raised(exc: Exception, what: str | None = None) -> str:
        try:
            if what is None:
                raise exc
            with doing("an outer step"), doing(what):  # the innermost description wins
                raise exc
        except Exception as caught:
            return describe(caught)

    # lenet5's own errors name their file: as they are, on one line.
    assert raised(DataError("a.gz: broken\n  header")) == "a.gz: broken header"
    assert raised(WriteError(28, "cannot write out/x: No space left on device")) == (
        "cannot write out/x: No space left on device"
    )
    # An OS error by its file name; one without a file by what the command was doing.
    assert raised(FileNotFoundError(2, "No such file or directory", "w.bin")) == (
        "w.bin: No such file or directory"
    )
    assert raised(OSError(28, "No space left on device"), "saving the model in run") == (
        "saving the model in run: No space left on device"
    )
    # Somebody else's error never comes alone: its type and where it happened.
    assert raised(zlib.error("invalid distance too far back"), "loading mnist from d") == (
        "loading mnist from d: error: invalid distance too far back"
    )
    assert raised(RuntimeError("line 1\nline 2\n" + "x" * 2000)).startswith(
        "RuntimeError: line 1 line 2 xxx"
    )
    assert len(raised(RuntimeError("x" * 2000))) == 600


def test_a_failed_rename_is_described_with_both_paths(tmp_path: Path) -> None:
    from lenet5.cli._errors import describe

    source, target = tmp_path / "missing", tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError) as info:
        os.rename(source, target)
    assert describe(info.value) == f"{source} -> {target}: No such file or directory"


def test_missing_data_folder_with_debug_shows_traceback(tmp_path: Path, run_cli: Runner) -> None:
    missing = tmp_path / "no-such-folder"
    result = run_cli("--debug", "train", "--data-dir", missing, "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DataError" in result.stderr


def test_usage_error_with_debug_raises(mnist_dir: Path) -> None:
    with pytest.raises(UsageError, match="epochs"):
        main(["--debug", "train", "--data-dir", str(mnist_dir), "--epochs", "-1"])


# Python's own warning format: "path/file.py:123: UserWarning: ..."
PYTHON_FORMAT = re.compile(r"\.py:\d+: \w*Warning")


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


def test_a_closed_pipe_ends_the_command_quietly(mnist_dir: Path, tmp_path: Path) -> None:
    for args in (["info"], ["evaluate", "--data-dir", mnist_dir, "--device", "cpu"]):
        reader, writer = os.pipe()
        os.close(reader)  # nobody reads: the first write to the pipe fails (EPIPE)
        try:
            process = start(args, cwd=tmp_path, stdout=writer)
        finally:
            os.close(writer)
        code, _, err = finish(process)
        assert (code, err) == (141, ""), args


def test_a_pipe_into_head_shows_no_error(tmp_path: Path) -> None:
    if shutil.which("head") is None:
        pytest.skip("no head command")
    command = f"{sys.executable} -m lenet5 info | head -1"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=300, env=environment()
    )
    # Whether the pipe is already closed when lenet5 flushes is up to the scheduler (exit 0
    # or 141); what must hold either way: the first line, and nothing on standard error.
    assert done.stdout.startswith("lenet5 "), done
    assert done.stderr == ""
