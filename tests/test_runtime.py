"""Inference backends: ONNX Runtime against eager PyTorch, on real test images."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from helpers import needs_onnx
from lenet5 import LeNet5
from lenet5.data import ImageSet
from lenet5.export import ExportError
from lenet5.predict import Predictor
from lenet5.runtime import OnnxRuntimeModel, inference_model, resolve_backend
from lenet5.training import evaluate


@needs_onnx
def test_onnxruntime_gives_the_eager_logits_on_real_digits(test_1k: ImageSet) -> None:
    model = LeNet5.from_pretrained("DEFAULT")
    fast = OnnxRuntimeModel(model)
    x = test_1k.normalized()
    with torch.inference_mode():
        want = model(x)
    for batch in (x[:1], x[:7], x):
        got = fast(batch)
        torch.testing.assert_close(got, want[: batch.shape[0]], atol=2e-5, rtol=1e-5)
    assert torch.equal(fast(x).argmax(1), want.argmax(1))


@needs_onnx
def test_other_sizes_convert_too() -> None:
    torch.manual_seed(0)
    model = LeNet5(num_classes=3, in_channels=2).eval()
    x = torch.randn(5, 2, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(OnnxRuntimeModel(model)(x), model(x), atol=2e-5, rtol=1e-5)


@needs_onnx
def test_evaluate_with_onnxruntime_matches_torch(mnist_test: ImageSet) -> None:
    model = LeNet5.from_pretrained("mnist-v1")
    eager = evaluate(model, mnist_test, backend="torch")
    ort = evaluate(model, mnist_test, backend="onnxruntime")
    reused = evaluate(OnnxRuntimeModel(model), mnist_test, batch_size=500)
    assert eager.accuracy == ort.accuracy == reused.accuracy == pytest.approx(99.07)
    assert torch.equal(eager.confusion, ort.confusion)
    assert ort.loss == pytest.approx(eager.loss, rel=1e-5)
    assert torch.equal(eager.predictions, reused.predictions)
    assert model.training is False


@needs_onnx
def test_predictor_uses_onnxruntime_on_the_cpu_by_default(tmp_path: Path) -> None:
    from PIL import Image

    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    images[0, 4:24, 13:16] = 255  # a "1"
    images[1, 6:9, 6:22] = 255  # a "7": a bar and a stroke
    images[1, 9:24, 18:21] = 255
    images[2, 5:23, 8:20] = 255
    images[2, 8:20, 11:17] = 0  # a "0"
    auto, eager = Predictor(), Predictor(backend="torch")
    assert (auto.backend, eager.backend) == ("onnxruntime", "torch")
    got, want = auto.predict_tensor(images), eager.predict_tensor(images)
    assert [p.prediction for p in got] == [p.prediction for p in want]
    for a, b in zip(got, want, strict=True):
        assert a.probability == pytest.approx(b.probability, abs=1e-5)
    path = tmp_path / "one.png"
    Image.fromarray(images[0].numpy()).save(path)
    assert auto.predict([path])[0].prediction == eager.predict([path])[0].prediction


def test_backend_choice_and_its_errors() -> None:
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "meta") == "torch"  # not the CPU: eager PyTorch
    with pytest.raises(ValueError, match="runs on the CPU, not cuda"):
        resolve_backend("onnxruntime", "cuda")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        resolve_backend("tensorrt", "cpu")
    model = LeNet5()
    assert inference_model(model, "torch") is model


@needs_onnx
def test_a_model_onnx_cannot_take_falls_back_on_auto_and_fails_when_asked() -> None:
    class Odd(nn.Module):
        """A classifier whose export fails: it returns a tuple."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(784, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x.flatten(1)).tolist()  # type: ignore[return-value]

    odd = Odd()
    assert inference_model(odd, "auto") is odd
    with pytest.raises(ExportError):
        inference_model(odd, "onnxruntime")


def test_without_the_onnx_extra(tmp_path: Path, mnist_dir: Path) -> None:
    # A fresh interpreter in which onnxruntime cannot be imported, as after a plain install.
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["onnxruntime"] = None  # import onnxruntime -> ImportError
        from lenet5.predict import Predictor
        assert Predictor().backend == "torch", "auto must fall back to PyTorch"
        from lenet5.cli import main
        sys.exit(main(["evaluate", "--data-dir", {str(mnist_dir)!r}, "--backend", "onnxruntime"]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'lenet5[onnx]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_runtime_does_not_import_export() -> None:
    # export is built on runtime; the reverse import would make a cycle again.
    code = "import sys, lenet5.runtime; print('lenet5.export' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False"]


# ------------------------------------------------------------------------- any float input


@pytest.fixture
def onnxruntime_model() -> Any:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from lenet5.runtime import OnnxRuntimeModel

    return OnnxRuntimeModel(LeNet5.from_pretrained("DEFAULT"), threads=1)


def test_onnxruntime_takes_any_float_input(onnxruntime_model: Any, tiny_test: ImageSet) -> None:
    model = LeNet5.from_pretrained("DEFAULT").eval()
    x = tiny_test.images[:6].double().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
    odd = x.transpose(2, 3).requires_grad_()  # float64, not contiguous, requiring grad
    with torch.no_grad():
        expected = model(odd.detach().float())
    torch.testing.assert_close(onnxruntime_model(odd), expected, atol=1e-4, rtol=1e-4)
    assert repr(onnxruntime_model) == "OnnxRuntimeModel(in_channels=1)"
