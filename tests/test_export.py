"""Export to TorchScript and ONNX, checked against the eager model with a dynamic batch."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import needs_onnx
from lenet5 import LeNet5
from lenet5.export import ExportError, export_model


def _inputs(channels: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return [torch.randn(n, channels, 28, 28, generator=g) for n in (1, 3, 64)]


def test_torchscript_matches_eager(tmp_path: Path) -> None:
    model = LeNet5.from_pretrained("DEFAULT")
    path = export_model(model, tmp_path / "out dir" / "lenet5.pt", format="torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    with torch.inference_mode():
        for x in _inputs():
            assert torch.allclose(loaded(x), model(x), atol=1e-5)
    assert not list(path.parent.glob(".*.tmp"))


@needs_onnx
def test_onnx_matches_eager_with_dynamic_batch(tmp_path: Path) -> None:
    import onnxruntime

    model = LeNet5(num_classes=4, in_channels=3).eval()
    path = export_model(model, tmp_path / "m.onnx", format="onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    with torch.inference_mode():
        for x in _inputs(channels=3):
            (got,) = session.run(None, {"input": x.numpy()})
            assert got.shape == (x.shape[0], 4)
            assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-5)


def test_unknown_format() -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(LeNet5(), "x.bin", format="tflite")  # type: ignore[arg-type]


def test_export_error_is_one_class() -> None:
    import lenet5
    from lenet5._onnx_graph import ExportError as raised_below

    assert ExportError is lenet5.ExportError is raised_below


# ------------------------------------------------ refused before the file is written


class BatchBranch(torch.nn.Module):
    """Control flow on the input: tracing keeps only the branch of the batch it traced."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.fc(x.flatten(1))
        return y if x.shape[0] == 2 else -y


class Counter(torch.nn.Module):
    """A forward pass that depends on how often it ran: an export freezes one count."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y: torch.Tensor = self.fc(x.flatten(1))
        return y * self.calls


def _refused(path: Path, model: torch.nn.Module, format: str) -> str:
    """Export ``model`` over an existing file; returns the one-line refusal."""
    path.write_bytes(b"the previous export")
    with pytest.raises(ExportError) as info:
        export_model(model, path, format=format)  # type: ignore[arg-type]
    assert path.read_bytes() == b"the previous export"  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporaries
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_torchscript_export_that_differs_is_refused_before_writing(tmp_path: Path) -> None:
    message = _refused(tmp_path / "m.pt", BatchBranch(), "torchscript")
    assert message == "the TorchScript export does not reproduce the model's outputs"
    message = _refused(tmp_path / "m.pt", Counter(), "torchscript")
    assert message == (
        "cannot trace Counter to TorchScript: Tracing failed sanity checks! ERROR: Graphs "
        "differed across invocations!"
    )


@needs_onnx
def test_an_onnx_export_that_differs_is_refused_before_writing(tmp_path: Path) -> None:
    message = _refused(tmp_path / "m.onnx", Counter(), "onnx")
    assert message == "the ONNX Runtime export does not reproduce the model's outputs"


# -------------------------------------------------------------- the model and the exporter


def test_export_leaves_the_model_alone(tmp_path: Path) -> None:
    model = LeNet5().train()
    export_model(model, tmp_path / "m.pt", format="torchscript")
    assert model.training
    assert all(m.training for m in model.modules())


def test_a_model_the_exporter_cannot_trace_is_an_export_error(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from lenet5.export import ExportError, export_model

    class Refuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("this model refuses to run")

    with pytest.raises(ExportError) as info:
        export_model(Refuses(), tmp_path / "m.onnx", format="onnx")
    assert str(info.value) == "cannot export Refuses to ONNX: this model refuses to run"
    assert not (tmp_path / "m.onnx").exists()
