"""``lenet5 predict`` accounts for every input (issue #26, item 3).

A folder's dangling links, link loops, FIFOs and a sub-folder named ``x.png`` used to be
skipped in silence, and one missing path or empty folder aborted the whole batch. Now each
input that cannot be used gets its one line (``lenet5 predict: error: PATH: why``), the
rest is still classified, and the exit code is 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from cli_helpers import run_main
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
