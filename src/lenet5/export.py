"""Export a model to TorchScript or ONNX, with a dynamic batch dimension.

Both formats are checked against the eager model on a random batch before the file is put in
place, and written atomically: a failed export never leaves a broken file behind.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal, TypeAlias, cast

import torch
from torch import nn

from .model import IMAGE_SIZE

__all__ = [
    "FORMATS",
    "ExportError",
    "check_outputs",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "onnx_bytes",
]

#: Export formats by name, with their usual file suffix.
FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}

_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The model could not be exported, or the export does not match the eager model."""


def _core(model: nn.Module) -> nn.Module:
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


def _in_channels(model: nn.Module) -> int:
    return int(getattr(model, "in_channels", 1))


@contextlib.contextmanager
def _atomic_path(path: Path):  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        from ._io import make_readable

        make_readable(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_torchscript(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` as a traced TorchScript module (load with ``torch.jit.load``).

    Returns:
        The file written.

    Raises:
        ExportError: If the traced module's outputs differ from the eager model's.
    """
    path = Path(path)
    core = _core(model)
    example = torch.randn(2, _in_channels(model), IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still works
        traced = torch.jit.trace(core, example)  # type: ignore[no-untyped-call]
        with _atomic_path(path) as tmp:
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp))  # type: ignore[no-untyped-call]
            check_outputs(core, loaded, _in_channels(model), "TorchScript")
    return path


def _require_onnx(*modules: str) -> None:
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"ONNX needs {module}: pip install 'lenet5[onnx]'") from None


_Layers: TypeAlias = tuple[nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear, nn.Linear]


def _lenet5_layers(model: nn.Module) -> _Layers | None:
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


def _lenet5_graph(layers: _Layers, opset: int) -> bytes:
    """The ONNX graph of a LeNet-5, written node by node.

    Twelve standard operators; this takes milliseconds, where the general exporter
    (``torch.onnx.export``) traces the model for seconds and needs torch>=2.5 and onnxscript.
    """
    from onnx import TensorProto, helper, numpy_helper

    names = ("conv1", "conv2", "fc1", "fc2", "fc3")
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in zip(names, layers, strict=True):
        weight, bias = layer.weight, layer.bias
        assert isinstance(weight, torch.Tensor)
        assert isinstance(bias, torch.Tensor)
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = weight, bias
    initializers = [
        numpy_helper.from_array(t.detach().to("cpu", torch.float32).contiguous().numpy(), name)
        for name, t in tensors.items()
    ]
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
    graph = helper.make_graph(
        nodes,
        "lenet5",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=initializers,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lenet5"
    )
    # An IR version that ONNX Runtime releases back to 1.16 can read.
    onnx_model.ir_version = min(onnx_model.ir_version, 9)
    return bytes(onnx_model.SerializeToString())


def onnx_bytes(model: nn.Module, *, opset: int = 18) -> bytes:
    """The serialised ONNX model of ``model`` (input ``input``, output ``logits``, dynamic batch).

    A :class:`~lenet5.LeNet5` is written directly, in milliseconds; any other module goes
    through ``torch.onnx.export`` (torch>=2.5 and onnxscript). Nothing is checked here; see
    :func:`export_onnx` and :class:`lenet5.runtime.OnnxRuntimeModel`.

    Raises:
        ExportError: If the ``onnx`` extra is missing or the model cannot be exported.
    """
    _require_onnx("onnx")
    layers = _lenet5_layers(model)
    if layers is not None:
        return _lenet5_graph(layers, opset)
    core = _core(model)
    _require_onnx("onnxscript")
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 5):
        raise ExportError(
            f"ONNX export of a {type(model).__name__} needs torch>=2.5 (its torch.export-based "
            f"exporter); this is torch {torch.__version__}. TorchScript export works: "
            "--format torchscript"
        )
    example = torch.randn(2, _in_channels(model), IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        try:
            program = torch.onnx.export(
                core,
                (example,),
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                dynamo=True,
            )
        except Exception as exc:  # the exporter raises many kinds of errors
            raise ExportError(f"cannot export {type(model).__name__} to ONNX: {exc}") from exc
    assert program is not None
    return bytes(program.model_proto.SerializeToString())


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, opset: int = 18) -> Path:
    """Save ``model`` as ONNX (input ``input``, output ``logits``, dynamic batch).

    Needs the ``onnx`` extra (``pip install 'lenet5[onnx]'``); the result is checked with
    ONNX Runtime against the eager model before it is put in place.

    Returns:
        The file written.

    Raises:
        ExportError: If the extra is missing or the outputs differ from the eager model's.
    """
    _require_onnx("onnx", "onnxruntime")
    from .runtime import OnnxRuntimeModel

    runner = OnnxRuntimeModel(model, opset=opset)  # converts, and checks against eager
    with _atomic_path(Path(path)) as tmp:
        tmp.write_bytes(runner.onnx_model)
    return Path(path)


def check_outputs(core: nn.Module, exported: object, channels: int, name: str) -> None:
    """Raise :class:`ExportError` unless ``exported(x)`` matches ``core(x)`` on random batches."""
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in (1, 7):
            x = torch.randn(batch, channels, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
            expected = core(x)
            got = exported(x)  # type: ignore[operator]
            if got.shape != expected.shape or not torch.allclose(
                got, expected, atol=_TOLERANCE, rtol=_TOLERANCE
            ):
                raise ExportError(f"the {name} export does not reproduce the model's outputs")


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    format: Literal["torchscript", "onnx"] = "onnx",
) -> Path:
    """Export ``model`` in ``format`` (``"torchscript"`` or ``"onnx"``) to ``path``."""
    if format == "torchscript":
        return export_torchscript(model, path)
    if format == "onnx":
        return export_onnx(model, path)
    raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
