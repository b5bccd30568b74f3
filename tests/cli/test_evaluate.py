"""``lenet5 evaluate``: accuracy, per-class accuracy and the confusion matrix, ``--json``
(strict), ``--plot``, the backends, and its errors."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from cli_helpers import Runner, final_accuracy, finish, one_line_error, run_main, start
from helpers import needs_onnx, strict_json
from lenet5 import ImageSet, LeNet5, Trainer
from lenet5.cli import main
from lenet5.training import evaluate


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory, train_2k: ImageSet) -> Path:
    """A model trained (Python API) on 2,000 images and saved with save_pretrained."""
    trainer = Trainer(epochs=1, verbose=False, device="cpu")
    trainer.fit(train_2k)
    assert isinstance(trainer.model, LeNet5)
    return trainer.model.save_pretrained(tmp_path_factory.mktemp("weights"))


def test_evaluate_prints_accuracy_per_class_and_confusion(
    weights_dir: Path, mnist_dir: Path, mnist_test: ImageSet, run_cli: Runner
) -> None:
    result = run_cli(
        "evaluate", "--weights", weights_dir, "--data-dir", mnist_dir, "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    expected = evaluate(LeNet5.from_pretrained(weights_dir), mnist_test)
    assert f"{final_accuracy(result.stdout):.2f}" == f"{expected.accuracy:.2f}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Final | Test Accuracy:")
    start = lines.index("Per-class accuracy:")
    per_class = lines[start + 1 : start + 11]
    for digit, (line, acc) in enumerate(zip(per_class, expected.per_class_accuracy, strict=True)):
        assert re.fullmatch(rf"\s+{digit}: +{acc:.2f}%", line), line
    start = next(i for i, line in enumerate(lines) if line.startswith("Confusion matrix"))
    header = lines[start + 1].split()
    assert header == [str(d) for d in range(10)]
    rows = [list(map(int, line.split())) for line in lines[start + 2 : start + 12]]
    assert [r[0] for r in rows] == list(range(10))
    assert [r[1:] for r in rows] == expected.confusion.tolist()


def test_evaluate_json(
    weights_dir: Path,
    mnist_dir: Path,
    mnist_test: ImageSet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "evaluate",
            "--weights",
            str(weights_dir),
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["total"] == 10_000
    assert data["dataset"] == "mnist"
    confusion = torch.tensor(data["confusion_matrix"])
    assert confusion.shape == (10, 10)
    assert int(confusion.sum()) == 10_000
    assert confusion.sum(dim=1).tolist() == mnist_test.class_counts().tolist()
    assert data["correct"] == int(confusion.trace())
    assert data["test_accuracy"] == pytest.approx(100 * data["correct"] / 10_000)
    assert len(data["per_class_accuracy"]) == 10


def test_evaluate_missing_weights(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here"
    missing.mkdir()
    args = ["evaluate", "--weights", str(missing), "--data-dir", str(mnist_dir), "--device", "cpu"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(missing) in err[0]


def test_evaluate_bad_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["evaluate", "--batch-size", "0"])
    assert excinfo.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_evaluate_json_of_a_diverged_model_is_strict(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tensors = {k: v.contiguous() for k, v in LeNet5().state_dict().items()}
    tensors["classifier.5.bias"] = torch.full((10,), float("inf"))
    weights = tmp_path / "diverged.safetensors"
    save_file(tensors, weights, metadata={"format": "pt"})
    args = ["evaluate", "--data-dir", small_mnist_dir, "--weights", weights, "--json"]
    assert run_main(*args, "--backend", "torch") == 0
    result = strict_json(capsys.readouterr().out)
    assert result["test_loss"] is None
    assert result["non_finite"] == {"test_loss": "nan"}
    assert result["total"] == 1000


def test_evaluate_plot_into_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plots.png"
    target.write_bytes(b"an earlier picture")
    assert run_main("evaluate", "--plot", target) == 2
    assert capsys.readouterr().err == (
        f"lenet5 evaluate: error: --plot {target} is a file, not a folder\n"
    )
    assert target.read_bytes() == b"an earlier picture"


@needs_onnx
def test_cli_backends_agree(mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = {}
    for backend in ("torch", "onnxruntime"):
        code = run_main(
            "evaluate", "--data-dir", mnist_dir, "--weights", "mnist-v2", "--backend", backend
        )
        assert code == 0
        lines[backend] = capsys.readouterr().out.splitlines()[0]
    assert lines["torch"] == lines["onnxruntime"] == "Final | Test Accuracy: 99.37%"
    assert run_main("evaluate", "--data-dir", mnist_dir, "--backend", "tpu") == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_a_bit_flipped_gzip_names_the_file(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken data"
    shutil.copytree(data, broken)
    target = broken / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises((OSError, EOFError, ValueError, gzip.BadGzipFile)):
        gzip.decompress(bytes(raw))  # the damage is real
    code, _, err = finish(start(["evaluate", "--data-dir", broken, "--device", "cpu"],
                                cwd=tmp_path))  # fmt: skip
    assert code == 1, err
    assert str(target) in one_line_error(err, "evaluate")
