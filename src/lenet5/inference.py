"""Evaluation: loss, accuracy and the confusion matrix of a model on labelled data."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import MNIST_MEAN, MNIST_STD, DataError, ImageSet, as_image_set, collate, normalize
from .runtime import InferenceFn, OnnxRuntimeModel, inference_model, torch_threads_for

__all__ = ["EvalResult", "evaluate", "model_input"]


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


def _batches(
    data: ImageSet | Dataset[Any],
    batch_size: int,
    norm: tuple[float, float] | None,
    device: torch.device,
) -> tuple[_Batches, float, float]:
    """``data``'s ``(images, labels)`` batches in order, and the ``(mean, std)`` that fits them.

    An :class:`ImageSet` is sliced on ``device`` and carries its own statistics; any other
    dataset goes through a :class:`~torch.utils.data.DataLoader` and uses ``norm``.
    """
    image_set = as_image_set(data)
    if image_set is None:
        mean, std = norm or (MNIST_MEAN, MNIST_STD)
        loader = DataLoader(
            cast("Dataset[Any]", data), batch_size=batch_size, shuffle=False, collate_fn=collate
        )
        return loader, mean, std
    image_set = image_set.to(device)
    chunks = (
        (image_set.images[i : i + batch_size], image_set.labels[i : i + batch_size])
        for i in range(0, len(image_set), batch_size)
    )
    return chunks, image_set.mean, image_set.std


@torch.inference_mode()
def evaluate(
    model: nn.Module | OnnxRuntimeModel,
    data: ImageSet | Dataset[Any],
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
        data: An :class:`~lenet5.data.ImageSet` or a dataset of ``(image, label)``.
        batch_size: Examples per forward pass.
        norm: ``(mean, std)`` for ``uint8`` images from a plain dataset (MNIST's by default).
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
    batches, mean, std = _batches(data, batch_size, norm, device)
    try:
        with torch_threads_for(run):
            return _tally(run, batches, mean, std, device)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)


def _tally(
    run: InferenceFn, batches: _Batches, mean: float, std: float, device: torch.device
) -> EvalResult:
    """Run every batch and add up the loss, the confusion matrix and the predictions."""
    # float64 where the device has it (MPS has not).
    loss_dtype = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.zeros((), dtype=loss_dtype, device=device)
    confusion: torch.Tensor | None = None
    predictions: list[torch.Tensor] = []
    total = 0
    for images, labels in batches:
        labels = labels.to(device)
        logits = run(model_input(images.to(device), mean, std)).to(device)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        num_classes = logits.shape[1]
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
