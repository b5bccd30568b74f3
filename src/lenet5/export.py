"""Export a model to TorchScript or ONNX, with a dynamic batch dimension.

Both formats are checked against the eager model on a random batch before the file is put in
place, and written atomically: a failed export never leaves a broken file behind. The ONNX
graph is built in :mod:`lenet5._onnx_graph` and checked by running it with
:class:`lenet5.runtime.OnnxRuntimeModel`; this module only writes files.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ._hints import publish
from ._io import atomic_file
from ._onnx_graph import (
    ExportError,
    check_outputs,
    example_batch,
    export_core,
    in_channels,
    one_line,
    onnx_bytes,
    require_onnx,
)
from .runtime import OnnxRuntimeModel

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


def export_torchscript(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` as a traced TorchScript module (load with ``torch.jit.load``).

    Returns:
        The file written.

    Raises:
        ExportError: If the model cannot be traced (its graph differs between calls), or
            the traced module's outputs differ from the eager model's; nothing is written.
    """
    path = Path(path)
    core = export_core(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still works
        try:
            traced = torch.jit.trace(core, example_batch(model))  # type: ignore[no-untyped-call]
        except Exception as exc:  # TracingCheckError, or whatever the model raises
            raise ExportError(
                f"cannot trace {type(model).__name__} to TorchScript: {one_line(exc)}"
            ) from exc
        with atomic_file(path) as tmp:
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp))  # type: ignore[no-untyped-call]
            check_outputs(core, loaded, in_channels(model), "TorchScript")
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike[str], *, opset: int = 18) -> Path:
    """Save ``model`` as ONNX (input ``input``, output ``logits``, dynamic batch).

    Needs the ``onnx`` extra (``pip install 'lenet5[onnx]'``); the result is checked with
    ONNX Runtime against the eager model before it is put in place.

    Returns:
        The file written.

    Raises:
        ExportError: If the extra is missing or the outputs differ from the eager model's.
    """
    require_onnx("onnx", "onnxruntime")
    runner = OnnxRuntimeModel(model, opset=opset)  # converts, and checks against eager
    with atomic_file(path) as tmp:
        tmp.write_bytes(runner.onnx_model)
    return Path(path)


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


publish(__name__, globals())
