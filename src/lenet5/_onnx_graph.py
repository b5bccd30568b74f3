"""A model as an ONNX graph, and the check that a converted model computes what the model does.

This is the lowest of the export layers: :mod:`lenet5.runtime` runs the graph written here
with ONNX Runtime, and :mod:`lenet5.export` writes it (or a TorchScript module) to a file.
Neither is imported here. A :class:`~lenet5.LeNet5` is written node by node, in milliseconds;
any other module goes through ``torch.onnx.export``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import warnings
from typing import TYPE_CHECKING, TypeAlias, cast

import torch
from torch import nn

from .model import IMAGE_SIZE

if TYPE_CHECKING:
    from onnx import TensorProto

__all__ = [
    "ExportError",
    "check_outputs",
    "example_batch",
    "export_core",
    "in_channels",
    "lenet5_layers",
    "one_line",
    "onnx_bytes",
    "require_onnx",
]

#: Largest difference allowed between an exported model's outputs and the eager model's.
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The model could not be exported, or the export does not match the eager model.

    Defined here, where it is first raised; import it as ``lenet5.export.ExportError``
    (or ``lenet5.ExportError``).
    """


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(exc: BaseException, limit: int = 240) -> str:
    """What went wrong, in one line: the first lines (at most two, up to a blank one) of the
    innermost cause, without terminal colours. Exporters wrap their errors in several
    layers of advice; the innermost says what the model does that cannot be exported."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines: list[str] = []
    for line in _ANSI.sub("", str(exc)).splitlines():
        if not line.strip() or len(lines) == 2:
            break
        lines.append(line.strip())
    text = " ".join(" ".join(lines).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_onnx(*modules: str) -> None:
    """Raise :class:`ExportError` naming the ``onnx`` extra unless every module imports."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"ONNX needs {module}: pip install 'lenet5[onnx]'") from None


def export_core(model: nn.Module) -> nn.Module:
    """A CPU copy of the layers to export (the caller's model is left as it was)."""
    # The input-shape check in LeNet5.forward is Python control flow; the exported graph is
    # the layers alone, and the formats' own shape checks take its place.
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if isinstance(features, nn.Module) and isinstance(classifier, nn.Module):
        core: nn.Module = nn.Sequential(features, classifier)
    else:
        core = model
    return copy.deepcopy(core).cpu().eval()


def in_channels(model: nn.Module) -> int:
    """The number of input channels ``model`` expects (1 unless it says otherwise)."""
    return int(getattr(model, "in_channels", 1))


def example_batch(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """A random float batch of ``model``'s input shape, for tracing."""
    return torch.randn(batch, in_channels(model), IMAGE_SIZE, IMAGE_SIZE)


def check_outputs(core: nn.Module, exported: object, channels: int, name: str) -> None:
    """Raise :class:`ExportError` unless ``exported(x)`` matches ``core(x)`` on random batches."""
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in (1, 7):
            x = torch.randn(batch, channels, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
            expected = core(x)
            got = exported(x)  # type: ignore[operator]
            if got.shape != expected.shape or not torch.allclose(
                got, expected, atol=TOLERANCE, rtol=TOLERANCE
            ):
                raise ExportError(f"the {name} export does not reproduce the model's outputs")


_Layers: TypeAlias = tuple[nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear, nn.Linear]


def lenet5_layers(model: nn.Module) -> _Layers | None:
    """The weighted layers of ``model`` if it is laid out exactly as :class:`~lenet5.LeNet5`."""
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if not (isinstance(features, nn.Sequential) and isinstance(classifier, nn.Sequential)):
        return None
    expected = (
        (nn.Conv2d, nn.Tanh, nn.AvgPool2d, nn.Conv2d, nn.Tanh, nn.AvgPool2d),
        (nn.Flatten, nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear),
    )
    for block, types in zip((features, classifier), expected, strict=True):
        if len(block) != len(types) or any(
            type(layer) is not t for layer, t in zip(block, types, strict=True)
        ):
            return None
    conv1, conv2 = cast(nn.Conv2d, features[0]), cast(nn.Conv2d, features[3])
    for conv in (conv1, conv2):
        if (
            conv.kernel_size != (5, 5)
            or conv.stride != (1, 1)
            or conv.padding != (0, 0)
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.bias is None
        ):
            return None
    for pool in (cast(nn.AvgPool2d, features[2]), cast(nn.AvgPool2d, features[5])):
        if pool.kernel_size != 2 or pool.stride != 2 or pool.padding != 0 or pool.ceil_mode:
            return None
    fc = [cast(nn.Linear, classifier[i]) for i in (1, 3, 5)]
    if any(layer.bias is None for layer in fc):
        return None
    return conv1, conv2, fc[0], fc[1], fc[2]


def _initializers(layers: _Layers) -> list[TensorProto]:
    """The layers' weights and biases as ONNX tensors named ``conv1.weight``, ``fc3.bias``..."""
    from onnx import numpy_helper

    tensors: list[TensorProto] = []
    for name, layer in zip(("conv1", "conv2", "fc1", "fc2", "fc3"), layers, strict=True):
        for kind in ("weight", "bias"):
            t = getattr(layer, kind)
            assert isinstance(t, torch.Tensor)
            array = t.detach().to("cpu", torch.float32).contiguous().numpy()
            tensors.append(numpy_helper.from_array(array, f"{name}.{kind}"))
    return tensors


def _lenet5_graph(layers: _Layers, opset: int) -> bytes:
    """The ONNX graph of a LeNet-5, written node by node.

    Twelve standard operators; this takes milliseconds, where the general exporter
    (``torch.onnx.export``) traces the model for seconds and needs torch>=2.5 and onnxscript.
    """
    from onnx import TensorProto, helper

    node = helper.make_node
    nodes = [
        node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], kernel_shape=[5, 5]),
        node("Tanh", ["c1"], ["t1"]),
        node("AveragePool", ["t1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], kernel_shape=[5, 5]),
        node("Tanh", ["c2"], ["t2"]),
        node("AveragePool", ["t2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p2"], ["flat"], axis=1),
        node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["f1"], transB=1),
        node("Tanh", ["f1"], ["t3"]),
        node("Gemm", ["t3", "fc2.weight", "fc2.bias"], ["f2"], transB=1),
        node("Tanh", ["f2"], ["t4"]),
        node("Gemm", ["t4", "fc3.weight", "fc3.bias"], ["logits"], transB=1),
    ]
    channels, classes = layers[0].in_channels, layers[4].out_features
    shape: list[str | int | None] = ["batch", channels, IMAGE_SIZE, IMAGE_SIZE]
    graph = helper.make_graph(
        nodes,
        "lenet5",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=_initializers(layers),
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lenet5"
    )
    # An IR version that ONNX Runtime releases back to 1.16 can read.
    onnx_model.ir_version = min(onnx_model.ir_version, 9)
    return bytes(onnx_model.SerializeToString())


def _traced_graph(model: nn.Module, opset: int) -> bytes:
    """Any module's ONNX graph through ``torch.onnx.export`` (torch>=2.5 and onnxscript)."""
    core = export_core(model)
    require_onnx("onnxscript")
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 5):
        raise ExportError(
            f"ONNX export of a {type(model).__name__} needs torch>=2.5 (its torch.export-based "
            f"exporter); this is torch {torch.__version__}. TorchScript export works: "
            "--format torchscript"
        )
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        # The exporter prints its progress; the caller asked for a file, not a report.
        stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        try:
            program = torch.onnx.export(
                core,
                (example_batch(model),),
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                dynamo=True,
            )
        except Exception as exc:  # the exporter raises many kinds of errors
            raise ExportError(
                f"cannot export {type(model).__name__} to ONNX: {one_line(exc)}"
            ) from exc
    assert program is not None
    return bytes(program.model_proto.SerializeToString())


def onnx_bytes(model: nn.Module, *, opset: int = 18) -> bytes:
    """The serialised ONNX model of ``model`` (input ``input``, output ``logits``, dynamic batch).

    A :class:`~lenet5.LeNet5` is written directly, in milliseconds; any other module goes
    through ``torch.onnx.export`` (torch>=2.5 and onnxscript). Nothing is checked here; see
    :func:`lenet5.export.export_onnx` and :class:`lenet5.runtime.OnnxRuntimeModel`.

    Raises:
        ExportError: If the ``onnx`` extra is missing or the model cannot be exported.
    """
    require_onnx("onnx")
    layers = lenet5_layers(model)
    if layers is not None:
        return _lenet5_graph(layers, opset)
    return _traced_graph(model, opset)
