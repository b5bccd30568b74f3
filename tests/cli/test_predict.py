"""``lenet5 predict``: drawn digits classified, and every input accounted for (issue #26,
item 3).

A folder's dangling links, link loops, FIFOs and a sub-folder named ``x.png`` used to be
skipped in silence, and one missing path or empty folder aborted the whole batch. Now each
input that cannot be used gets its one line (``lenet5 predict: error: PATH: why``), the
rest is still classified, and the exit code is 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from cli_helpers import run_main
from helpers import draw_digit, draw_one
from lenet5.data import load_mnist


@pytest.fixture(scope="module")
def digit(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """A real MNIST test digit as a PNG."""
    test = load_mnist(mnist_dir, split="test")
    path = tmp_path_factory.mktemp("digit") / "seven.png"
    Image.fromarray(test.images[0].numpy()).save(path)
    assert int(test.labels[0]) == 7
    return path


def _errors(stderr: str) -> dict[str, str]:
    """The error lines, by the path they name."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert all(line.startswith("lenet5 predict: error: ") for line in lines), lines
    found = {}
    for line in lines:
        path, _, why = line.removeprefix("lenet5 predict: error: ").partition(": ")
        found[Path(path).name] = why
    assert len(found) == len(lines), lines  # one line per input
    return found


def test_every_unusable_folder_entry_has_its_line_and_the_rest_is_classified(
    tmp_path: Path, digit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a-good.png").write_bytes(digit.read_bytes())
    (folder / "dangling.png").symlink_to(tmp_path / "gone.png")
    (folder / "loop1.png").symlink_to(folder / "loop2.png")
    (folder / "loop2.png").symlink_to(folder / "loop1.png")
    os.mkfifo(folder / "fifo.png")
    (folder / "x.png").mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not a picture by name: left out")
    (folder / "z-good.png").symlink_to(digit)

    assert run_main("predict", folder, "--json", "--top-k", "1") == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [Path(r["path"]).name for r in results] == ["a-good.png", "z-good.png"]
    assert [r["prediction"] for r in results] == [7, 7]
    errors = _errors(captured.err)
    assert sorted(errors) == [
        "dangling.png",
        "empty.png",
        "fifo.png",
        "loop1.png",
        "loop2.png",
        "x.png",
    ]
    assert "dangling symbolic link" in errors["dangling.png"]
    assert "symbolic link loop" in errors["loop1.png"]
    assert "FIFO" in errors["fifo.png"] or "pipe" in errors["fifo.png"]
    assert "a folder" in errors["x.png"]
    assert "empty" in errors["empty.png"]


def test_named_paths_that_cannot_be_used_do_not_abort_the_batch(
    tmp_path: Path, digit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "no pictures"
    empty.mkdir()
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    named = [
        tmp_path / "missing.png",
        empty,
        tmp_path / "*.gif",  # a glob that matches nothing
        tmp_path / "dangling.png",
        digit,
    ]
    assert run_main("predict", *named, "--top-k", "1") == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{digit}: 7 (")
    assert len(captured.out.splitlines()) == 1
    errors = _errors(captured.err)
    assert errors == {
        "missing.png": "no such file or folder",
        "no pictures": errors["no pictures"],
        "*.gif": "no files match",
        "dangling.png": f"a dangling symbolic link (to {tmp_path / 'gone.png'}, missing)",
    }
    assert errors["no pictures"].startswith("holds no images")


def test_only_usable_inputs_exit_zero(
    tmp_path: Path, digit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "fine"
    folder.mkdir()
    (folder / "one.png").write_bytes(digit.read_bytes())
    (folder / "readme.txt").write_text("no image suffix: not a picture, not an error")
    assert run_main("predict", folder, str(folder / "*.png")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert len(captured.out.splitlines()) == 2


def test_predict_json_is_strict(
    tmp_path: Path, digit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    from lenet5 import LeNet5

    # Weights another program wrote with NaN in them (save_pretrained refuses to): every
    # probability is NaN, and --json still prints strict JSON, with the reason.
    model = LeNet5()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["classifier.5.bias"] = torch.full((10,), float("nan"))
    weights = tmp_path / "nan.safetensors"
    save_file(tensors, weights, metadata={"format": "pt"})
    assert run_main("predict", digit, "--weights", weights, "--json", "--backend", "torch") == 0
    out = capsys.readouterr().out

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output")

    (result,) = json.loads(out, parse_constant=refuse)
    assert result["probability"] is None
    assert result["non_finite"]["probability"] == "nan"


# ---------------------------------------------------------- drawn digits and hostile files


def test_predict_cli_on_drawn_digits(tmp_path: Path) -> None:
    folder = tmp_path / "my digits"
    folder.mkdir()
    expected = {}
    for digit in (0, 1, 7):
        for size, dark, colour in ((60, True, (20, 20, 20)), (300, False, (255, 220, 0))):
            name = f"{digit}-{size}.png" if dark else f"{digit}-{size}.jpg"
            draw_digit(digit, folder / name, size=size, dark_on_light=dark, colour=colour)
            expected[str(folder / name)] = digit
    out = subprocess.run(
        [sys.executable, "-m", "lenet5", "predict", str(folder), "--json", "--top-k", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    results = json.loads(out.stdout)
    assert len(results) == len(expected)
    for item in results:
        assert set(item) >= {"path", "prediction", "probability", "top_k"}
        assert isinstance(item["prediction"], int)
        assert len(item["top_k"]) == 2
        assert item["top_k"][0]["class"] == item["prediction"]
        assert 0 < item["probability"] <= 1
    correct = sum(item["prediction"] == expected[item["path"]] for item in results)
    assert correct == len(expected), results  # the pictures are drawn the same every time
    text = subprocess.run(
        [sys.executable, "-m", "lenet5", "predict", str(folder / "7-60.png")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert text.startswith(f"{folder / '7-60.png'}: ")


def test_predict_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lenet5.cli import main

    def run(*args: str) -> int:
        try:
            return main(["predict", *args])
        except SystemExit as exit:
            return int(exit.code or 0)

    empty = tmp_path / "empty dir"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    good = draw_digit(1, tmp_path / "one.png", size=80, dark_on_light=True, colour=(0, 0, 0))
    for args, needle in (
        ((str(tmp_path / "missing.png"),), "no such file"),
        ((str(empty),), "holds no images"),
        ((str(tmp_path / "*.gif"),), "no files match"),
        ((str(good), "--weights", str(tmp_path / "notes.txt")), "only .safetensors"),
    ):
        assert run(*args) == 1, args
        error = capsys.readouterr().err
        assert "Traceback" not in error
        assert len(error.strip().splitlines()) == 1
        assert needle in error
    # One bad file among good ones: the good ones are still classified.
    assert run(str(good), str(broken), "--json") == 1
    captured = capsys.readouterr()
    assert [r["path"] for r in json.loads(captured.out)] == [str(good)]
    assert "broken.png" in captured.err
    assert "Traceback" not in captured.err
    assert run(str(good), "--top-k", "0") == 2


def test_the_cli_reports_each_bad_file_on_one_line_and_never_hangs(
    tmp_path: Path,
    hostile: dict[str, tuple[Path, str]],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kinds = ["warning", "error", "truncated", "corrupt", "empty", "nan", "fifo", "socket"]
    names = [hostile[k][0].name for k in kinds]
    draw_one(tmp_path / "bright-on-dark.png")
    sixteen = numpy.array(Image.open(tmp_path / "good.png")).astype(numpy.uint16) * 257
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    good = ["good.png", "sixteen.png"]
    args = ["predict", good[0], *names, os.devnull, good[1], "--weights", "mnist-v1"]
    # A hang would end in subprocess.TimeoutExpired: loud, not a wall-clock assert.
    out = run_cli(*args, "--backend", "torch", cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    expected = [*(hostile[k] for k in kinds), hostile["device"]]
    assert len(lines) == len(expected), out.stderr
    for line, (path, message) in zip(lines, expected, strict=True):
        name = path.name if path.parent == tmp_path else str(path)
        assert line.startswith(f"lenet5 predict: error: {name}: {message}"), line
    printed = out.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in printed] == good
    assert all(line.split(": ")[1].startswith("1 (") for line in printed), printed


def test_predict_refuses_a_zero_batch_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main("predict", tmp_path / "one.png", "--batch-size", "0") == 2
    assert capsys.readouterr().err == "lenet5 predict: error: --batch-size must be >= 1, got 0\n"
