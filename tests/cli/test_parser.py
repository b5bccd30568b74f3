"""The parser of ``lenet5`` (lenet5.cli and lenet5.cli._parser): built without torch, no
abbreviations, usage errors in one line, and the help the docs show."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import pytest

import lenet5
from cli_helpers import Runner, assert_one_line_error
from helpers import REPO
from lenet5.cli import build_parser, main


def test_version(run_cli: Runner) -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lenet5 {lenet5.__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    assert "usage: lenet5" in capsys.readouterr().err


def _without_import_times(stderr: str) -> tuple[set[str], str]:
    """The modules ``python -X importtime`` reported, and the rest of standard error."""
    modules, rest = set(), []
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[-1].strip())
        else:
            rest.append(line)
    return modules, "\n".join(rest)


def _torch_imported(modules: set[str]) -> bool:
    return any(m == "torch" or m.startswith("torch.") for m in modules)


@pytest.mark.parametrize(
    "command", ["", "train", "evaluate", "predict", "export", "info"], ids=lambda c: c or "lenet5"
)
def test_help_does_not_import_torch(command: str, run_cli: Runner) -> None:
    result = run_cli(*command.split(), "--help", python_flags=["-X", "importtime"])
    modules, stderr = _without_import_times(result.stderr)
    assert result.returncode == 0, stderr
    assert "usage: lenet5" in result.stdout
    assert "lenet5.cli" in modules  # the wrapper saw the command line being imported
    assert not _torch_imported(modules)


def _used_run_folder(tmp_path: Path) -> Path:
    (tmp_path / "used" / "checkpoints" / "epoch-0001").mkdir(parents=True)
    return tmp_path / "used"


def _unreadable_settings(tmp_path: Path) -> Path:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train_config.json").write_text("{not json")
    return tmp_path / "broken"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--epoch", "3"], "did you mean '--epochs'?"),  # no abbreviations
        (["train", "--epochs", "x"], "invalid int value: 'x'"),
        (["train", "--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
        (["train", "--recipe", "mnist-v9"], "invalid choice: 'mnist-v9'"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--lr", "-1"], "lr must be positive"),
        (["train", "--augment", "rotate"], "augment"),
        (["train", "--device", "floppy"], "unknown device 'floppy'"),
        (["train", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["train", "--out", _used_run_folder], "already holds a run's checkpoints"),
        (["train", "--resume", _unreadable_settings], "cannot read the run's settings"),
        (["evaluate", "--device", "floppy"], "unknown device 'floppy'"),
        (["evaluate", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["predict", "x.png", "--top-k", "0"], "--top-k must be >= 1"),
        (["export", "--format", "onnx", "--out", "."], "is a folder"),
        (["export", "--format", "tflite", "--out", "m"], "invalid choice: 'tflite'"),
    ],
    # Ids without addresses, so that every xdist worker collects the same tests.
    ids=lambda v: v if isinstance(v, str) else " ".join(getattr(a, "__name__", a) for a in v),
)
def test_usage_errors_are_one_line_and_do_not_import_torch(
    args: list[Any], needle: str, tmp_path: Path, run_cli: Runner
) -> None:
    argv = [a(tmp_path) if callable(a) else a for a in args]
    result = run_cli(*argv, python_flags=["-X", "importtime"], cwd=tmp_path)
    modules, stderr = _without_import_times(result.stderr)
    line = assert_one_line_error(
        subprocess.CompletedProcess(result.args, result.returncode, result.stdout, stderr), 2
    )
    assert line.startswith(f"lenet5 {args[0]}: error: ")
    assert needle in line
    # "augment" parses its spec with lenet5.augment, which imports torch (not the CLI's doing).
    assert not _torch_imported(modules) or "--augment" in args


def test_parsers_take_no_abbreviations_and_describe_themselves() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert parser.allow_abbrev is False
    assert set(commands.choices) == {"train", "evaluate", "predict", "export", "info"}
    for name, sub in commands.choices.items():
        assert sub.allow_abbrev is False, name
        assert sub.description, name


def test_choice_lists_agree_with_the_library() -> None:
    from lenet5.cli import _parser
    from lenet5.data import DATASETS
    from lenet5.export import FORMATS
    from lenet5.runtime import BACKENDS

    assert set(_parser.DATASET_NAMES) == set(DATASETS)
    assert set(_parser.BACKENDS) == set(BACKENDS)
    assert set(_parser.EXPORT_FORMATS) == set(FORMATS)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "info"])
def test_the_documented_help_is_the_real_help(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cli.rst shows each command's ``--help`` verbatim; it must not drift from the code."""
    monkeypatch.setenv("COLUMNS", "88")  # the docs width
    docs = (REPO / "docs" / "cli.rst").read_text()
    block = docs.split(f".. help of lenet5 {command}\n", 1)[1].split(".. end of help", 1)[0]
    documented = [
        line[3:].rstrip()
        for line in block.splitlines()
        if line.startswith("   ") and not line.startswith("   $ ")
    ]
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    real = commands.choices[command].format_help()
    assert documented == [line.rstrip() for line in real.splitlines() if line.strip()]
