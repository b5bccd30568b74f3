"""The ONNX graph of an exact LeNet-5 written directly (lenet5._onnx_graph), others through
torch.onnx; errors in one line."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import torch
from torch import nn

from helpers import needs_onnx
from lenet5 import LeNet5
from lenet5._onnx_graph import lenet5_layers
from lenet5.export import export_model


def test_the_innermost_cause_in_one_line() -> None:
    from lenet5._onnx_graph import one_line

    inner = ValueError("\x1b[31mdata-dependent\x1b[0m branch\non the input\n\nadvice")
    outer = RuntimeError("the exporter failed")
    outer.__cause__ = inner  # what `raise ... from inner` sets
    assert one_line(outer) == "data-dependent branch on the input"
    assert one_line(KeyError()) == "KeyError"


def test_only_exact_lenet5_layers_are_written_by_hand() -> None:
    from lenet5._onnx_graph import lenet5_layers

    padded, ceil, no_bias = LeNet5(), LeNet5(), LeNet5()
    cast(nn.Conv2d, padded.features[0]).padding = (2, 2)
    cast(nn.AvgPool2d, ceil.features[2]).ceil_mode = True
    no_bias.classifier[5] = nn.Linear(84, 10, bias=False)
    assert [lenet5_layers(m) for m in (padded, ceil, no_bias)] == [None, None, None]


def test_only_exact_lenet5_layouts_take_the_direct_onnx_path() -> None:
    assert lenet5_layers(LeNet5()) is not None
    relu = LeNet5()
    relu.features[1] = nn.ReLU()
    assert lenet5_layers(relu) is None
    assert lenet5_layers(nn.Linear(2, 2)) is None


@needs_onnx
@pytest.mark.slow
def test_other_layouts_export_through_torch_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    import onnxruntime

    model = LeNet5()
    model.features[1] = nn.ReLU()
    model.eval()
    path = export_model(model, tmp_path / "relu.onnx", format="onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        (got,) = session.run(None, {"input": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), model(x), atol=1e-5, rtol=1e-5)
