"""Inference backends: eager PyTorch, or ONNX Runtime on the CPU.

For small batches on the CPU, PyTorch spends most of a LeNet-5 forward pass in per-operator
overhead (hundreds of microseconds for one image); ONNX Runtime runs the same graph in tens of
microseconds. :class:`OnnxRuntimeModel` wraps a model's ONNX graph in an
``onnxruntime.InferenceSession`` and is called like the model; it is checked against the eager
model when it is built. :func:`inference_model` picks the backend.

The graph comes from :mod:`lenet5._onnx_graph`, below this module; :mod:`lenet5.export`,
above it, writes the same graph to a file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeAlias

import torch
from torch import nn

from ._onnx_graph import (
    ExportError,
    check_outputs,
    export_core,
    in_channels,
    one_line,
    onnx_bytes,
    require_onnx,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "InferenceFn",
    "OnnxRuntimeModel",
    "inference_model",
    "onnxruntime_available",
    "resolve_backend",
    "torch_threads_for",
]

#: Backend names accepted by ``backend=`` and ``--backend``.
BACKENDS = ("auto", "torch", "onnxruntime")
Backend: TypeAlias = Literal["auto", "torch", "onnxruntime"]

#: Something that maps a float batch ``(N, C, 28, 28)`` to logits ``(N, classes)``.
InferenceFn: TypeAlias = Callable[[torch.Tensor], torch.Tensor]


def onnxruntime_available() -> bool:
    """True when ``onnx`` and ``onnxruntime`` can be imported (the ``onnx`` extra)."""
    try:
        require_onnx("onnx", "onnxruntime")
    except ExportError:
        return False
    return True


class OnnxRuntimeModel:
    """A model run by ONNX Runtime's CPU execution provider, called like the model.

    The model's weights are copied when this is built: later changes to the model are not
    seen. Outputs are checked against the eager model on random batches before use.

    Args:
        model: The model (a :class:`~lenet5.LeNet5` converts in milliseconds; other modules
            go through ``torch.onnx.export``).
        threads: Intra-op threads for ONNX Runtime (its default, one per core, when ``None``).
        opset: The ONNX operator set to write.

    Attributes:
        onnx_model: The serialised ONNX model that the session runs.

    Raises:
        ExportError: If the ``onnx`` extra is missing, the model cannot be converted, or the
            converted model's outputs differ from the eager model's.

    Example:
        >>> from lenet5 import LeNet5
        >>> from lenet5.runtime import OnnxRuntimeModel
        >>> fast = OnnxRuntimeModel(LeNet5())  # doctest: +SKIP
        >>> fast(torch.zeros(1, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([1, 10])
    """

    def __init__(self, model: nn.Module, *, threads: int | None = None, opset: int = 18) -> None:
        require_onnx("onnx", "onnxruntime")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        # Quiet: ONNX Runtime otherwise prints warnings about unused initializers and the like.
        options.log_severity_level = 3
        self.onnx_model = onnx_bytes(model, opset=opset)
        self.in_channels = in_channels(model)
        self._outputs = ["logits"]
        try:
            self.session: Any = onnxruntime.InferenceSession(
                self.onnx_model, options, providers=["CPUExecutionProvider"]
            )
            check_outputs(export_core(model), self, self.in_channels, "ONNX Runtime")
        except ExportError:
            raise
        except Exception as exc:  # onnxruntime's own error types
            raise ExportError(
                f"ONNX Runtime cannot run {type(model).__name__}: {one_line(exc)}"
            ) from exc

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits for a float batch ``(N, C, 28, 28)`` (returned on the CPU)."""
        # For one image the conversions cost as much as the model: skip the ones not needed.
        if inputs.dtype != torch.float32 or inputs.device.type != "cpu":
            inputs = inputs.to("cpu", torch.float32)
        if not inputs.is_contiguous():
            inputs = inputs.contiguous()
        if inputs.requires_grad:
            inputs = inputs.detach()
        return torch.from_numpy(self.session.run(self._outputs, {"input": inputs.numpy()})[0])

    def __repr__(self) -> str:
        return f"OnnxRuntimeModel(in_channels={self.in_channels})"


@contextlib.contextmanager
def torch_threads_for(run: object) -> Iterator[None]:
    """While ONNX Runtime does the work, keep PyTorch's own tensor code to one thread.

    ONNX Runtime runs its own thread pool; PyTorch's OpenMP threads, spinning after each of
    the small tensor operations around it (normalising, the loss, the argmax), would take
    the same cores from it: evaluating the 10,000 MNIST test images was about twice as slow
    on two cores. Nothing changes for the ``torch`` backend.
    """
    if not isinstance(run, OnnxRuntimeModel):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_backend(backend: str, device: torch.device | str) -> Literal["torch", "onnxruntime"]:
    """The backend to use: ``"auto"`` is ONNX Runtime on the CPU when it is installed.

    Raises:
        ValueError: For an unknown name, or ``"onnxruntime"`` with a non-CPU device.
        ExportError: For ``"onnxruntime"`` when the ``onnx`` extra is not installed.
    """
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(
                f"the onnxruntime backend runs on the CPU, not {device}; use backend='torch' "
                "(--backend torch) on an accelerator"
            )
        require_onnx("onnx", "onnxruntime")
        return "onnxruntime"
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def inference_model(model: nn.Module, backend: str = "auto") -> InferenceFn:
    """``model`` ready for inference on ``backend`` (see :func:`resolve_backend`).

    With ``"auto"``, a model that ONNX Runtime cannot run falls back to eager PyTorch.

    Returns:
        A callable from a float batch to logits: the model itself (in eval mode) for
        ``"torch"``, an :class:`OnnxRuntimeModel` for ``"onnxruntime"``.
    """
    model.eval()
    device = next(model.parameters()).device
    if resolve_backend(backend, device) == "torch":
        return model
    try:
        return OnnxRuntimeModel(model)
    except ExportError:
        if backend == "auto":
            return model
        raise
