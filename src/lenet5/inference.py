"""Evaluation: loss, accuracy and the confusion matrix of a model on labelled data."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import (
    DataError,
    ImageSet,
    as_image_set,
    image_batches,
    known_norm,
    labelled_batches,
    normalize,
    warn_default_norm,
)
from .runtime import InferenceFn, OnnxRuntimeModel, inference_model, torch_threads_for

__all__ = ["EvalResult", "evaluate", "model_input", "predict_logits"]


@dataclass(frozen=True)
class EvalResult:
    """The outcome of :func:`evaluate` (and of :meth:`Trainer.evaluate <lenet5.Trainer.evaluate>`).

    Attributes:
        loss: Mean cross-entropy loss.
        accuracy: Accuracy in percent (``98.85`` means 98.85%).
        correct: Number of correctly classified examples.
        total: Number of examples.
        confusion: ``(C, C)`` int64 tensor; row = true class, column = predicted class.
        predictions: The predicted class of every example, in data order (int64, CPU).
    """

    loss: float
    accuracy: float
    correct: int
    total: int
    confusion: torch.Tensor
    predictions: torch.Tensor

    @property
    def per_class_accuracy(self) -> list[float]:
        """Accuracy of each true class in percent (``nan`` for a class with no examples)."""
        totals = self.confusion.sum(dim=1)
        return [
            100.0 * float(self.confusion[c, c]) / float(t) if t else math.nan
            for c, t in enumerate(totals.tolist())
        ]


def model_input(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """A batch of images as the model's input: ``uint8`` ones normalised with ``mean``/``std``,
    float ones taken as already prepared (given a channel axis if they have none)."""
    if images.dtype == torch.uint8:
        return normalize(images, mean, std)
    return images if images.dim() == 4 else images.unsqueeze(1)


_Batches: TypeAlias = Iterable[tuple[torch.Tensor, torch.Tensor]]


class _Norm:
    """The ``(mean, std)`` for ``uint8`` batches of data that carries none: the one given,
    else MNIST's with a warning on the first ``uint8`` batch (float data needs none)."""

    def __init__(self, norm: tuple[float, float] | None) -> None:
        self.norm = norm

    def __call__(self, images: torch.Tensor) -> tuple[float, float]:
        if self.norm is None:
            self.norm = warn_default_norm() if images.dtype == torch.uint8 else (0, 1)
        return self.norm


def _batches(
    data: object,
    batch_size: int,
    norm: tuple[float, float] | None,
    device: torch.device,
) -> tuple[_Batches, _Norm]:
    """``data``'s ``(images, labels)`` batches in order, and the ``(mean, std)`` that fits them.

    An :class:`ImageSet` is sliced on ``device`` and carries its own statistics; any other
    data (a dataset, a DataLoader as given, a list) uses ``norm``.
    """
    image_set = as_image_set(data, norm)
    if image_set is None:
        return labelled_batches(data, batch_size), _Norm(norm or known_norm(data))
    image_set = image_set.to(device)
    chunks = (
        (image_set.images[i : i + batch_size], image_set.labels[i : i + batch_size])
        for i in range(0, len(image_set), batch_size)
    )
    return chunks, _Norm((image_set.mean, image_set.std))


@torch.inference_mode()
def evaluate(
    model: nn.Module | OnnxRuntimeModel,
    data: ImageSet | Dataset[Any] | DataLoader[Any] | Iterable[Any],
    *,
    batch_size: int = 2048,
    norm: tuple[float, float] | None = None,
    backend: str = "torch",
) -> EvalResult:
    """Evaluate ``model`` on ``data`` in batches on the model's device.

    Args:
        model: A classifier returning logits, or an
            :class:`~lenet5.runtime.OnnxRuntimeModel` built from one (so that repeated
            evaluations convert the model once).
        data: An :class:`~lenet5.data.ImageSet`, a dataset (map-style or iterable) or list
            of ``(image, label)``, or a DataLoader of ``(images, labels)`` batches (used as
            given). Labels are class indices or probability vectors (soft targets: the loss
            is the cross-entropy against them, the accuracy counts their most likely class).
        batch_size: Examples per forward pass (a DataLoader keeps its own).
        norm: ``(mean, std)`` for ``uint8`` images of data that carries none of its own
            (anything but an ImageSet or a torchvision MNIST-family dataset); ``None``
            takes MNIST's, with a :class:`~lenet5.data.NormalizationWarning`.
        backend: ``"torch"``, ``"onnxruntime"`` (CPU), or ``"auto"`` (ONNX Runtime on the CPU
            when installed); see :mod:`lenet5.runtime`.

    Raises:
        DataError: If ``data`` is empty.
        ValueError: For an unknown backend or one that cannot run on the model's device.

    Returns:
        An :class:`EvalResult`.
    """
    run: InferenceFn
    if isinstance(model, OnnxRuntimeModel):
        device, was_training, run = torch.device("cpu"), False, model
    else:
        device = next(model.parameters()).device
        was_training = model.training
        run = inference_model(model, backend)  # also puts the model in eval mode
    batches, stats = _batches(data, batch_size, norm, device)
    try:
        with torch_threads_for(run):
            return _tally(run, batches, stats, device)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)


def _tally(run: InferenceFn, batches: _Batches, stats: _Norm, device: torch.device) -> EvalResult:
    """Run every batch and add up the loss, the confusion matrix and the predictions."""
    # float64 where the device has it (MPS has not).
    loss_dtype = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.zeros((), dtype=loss_dtype, device=device)
    confusion: torch.Tensor | None = None
    predictions: list[torch.Tensor] = []
    total = 0
    for images, labels in batches:
        labels = labels.to(device)
        logits = run(model_input(images.to(device), *stats(images))).to(device)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        num_classes = logits.shape[1]
        if labels.dim() == 2:  # soft targets: accuracy and confusion count their top class
            labels = labels.argmax(dim=1)
        predicted = logits.argmax(dim=1)
        predictions.append(predicted)
        counts = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
        confusion = counts if confusion is None else confusion + counts
        total += labels.shape[0]
    if confusion is None or total == 0:
        raise DataError("cannot evaluate on empty data")
    confusion = confusion.cpu()
    correct = int(confusion.diagonal().sum())
    return EvalResult(
        loss=float(loss_sum) / total,
        accuracy=100.0 * correct / total,
        correct=correct,
        total=total,
        confusion=confusion,
        predictions=torch.cat(predictions).cpu(),
    )


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    data: ImageSet | torch.Tensor | Dataset[Any] | DataLoader[Any] | Iterable[Any],
    *,
    batch_size: int = 2048,
    norm: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The model's logits ``(N, C)`` for every image of ``data``, on the CPU, in data order.

    Args:
        model: A classifier returning logits (evaluated in eval mode, then put back).
        data: An :class:`~lenet5.data.ImageSet`; a ``uint8`` or float image tensor
            ``(N, H, W)`` or ``(N, 1, H, W)``; a dataset or list of images or of
            ``(image, label)`` (labels are not needed, and dropped); or a DataLoader.
        batch_size: Images per forward pass (a DataLoader keeps its own).
        norm: ``(mean, std)`` for ``uint8`` images that carry none (as :func:`evaluate`).

    Raises:
        DataError: If ``data`` is empty or of a form that holds no images.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    image_set = as_image_set(data, norm) if not isinstance(data, torch.Tensor) else None
    batches: Iterable[torch.Tensor]
    if image_set is not None:
        images = image_set.images
        batches = (images[i : i + batch_size] for i in range(0, len(image_set), batch_size))
        stats = _Norm((image_set.mean, image_set.std))
    else:
        batches, stats = image_batches(data, batch_size), _Norm(norm or known_norm(data))
    try:
        out = [model(model_input(x.to(device), *stats(x))).float().cpu() for x in batches]
    finally:
        model.train(was_training)
    if not out:
        raise DataError("cannot predict on empty data")
    return torch.cat(out)
