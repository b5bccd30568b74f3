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
from typing import Literal

import torch
from torch import nn

from .model import IMAGE_SIZE

__all__ = ["FORMATS", "ExportError", "export_model", "export_onnx", "export_torchscript"]

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
        from .training.checkpoint import make_readable

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
            _compare(core, loaded, _in_channels(model), "TorchScript")
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, opset: int = 18) -> Path:
    """Save ``model`` as ONNX (input ``input``, output ``logits``, dynamic batch).

    Needs the ``onnx`` extra (``pip install 'lenet5[onnx]'``); the result is checked with
    ONNX Runtime.

    Returns:
        The file written.

    Raises:
        ExportError: If the extra is missing or the outputs differ from the eager model's.
    """
    path = Path(path)
    for module, extra in (("onnx", "onnx"), ("onnxscript", "onnx"), ("onnxruntime", "onnx")):
        try:
            __import__(module)
        except ImportError:
            raise ExportError(
                f"ONNX export needs {module}: pip install 'lenet5[{extra}]'"
            ) from None
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 5):
        raise ExportError(
            f"ONNX export needs torch>=2.5 (its torch.export-based exporter); this is torch "
            f"{torch.__version__}. TorchScript export works: --format torchscript"
        )
    import onnxruntime

    core = _core(model)
    example = torch.randn(2, _in_channels(model), IMAGE_SIZE, IMAGE_SIZE)
    with _atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            torch.onnx.export(
                core,
                (example,),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                dynamo=True,
                external_data=False,
            )
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])

        _compare(core, run, _in_channels(model), "ONNX")
    return path


def _compare(core: nn.Module, exported: object, channels: int, name: str) -> None:
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
