"""Classify pictures with pretrained weights: the library side of ``lenet5 predict``.

Two ways to report a picture that cannot be used. :meth:`Predictor.predict` is all or
nothing: it raises :class:`~lenet5.preprocess.ImageError` naming the first bad input (its
path, or ``images[i]`` for an in-memory one). :meth:`Predictor.predict_files` and
:func:`predict_files` report per file: every file that fails (unreadable, corrupt,
truncated, empty, a decompression bomb, a folder, FIFO, device or socket, a blank
picture...) becomes a :class:`Failure` with its path, and the others are classified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .data import normalize
from .model import LeNet5
from .preprocess import ImageError, to_mnist
from .runtime import inference_model, torch_threads_for

__all__ = ["Candidate", "Failure", "Prediction", "Predictor", "predict_files"]


@dataclass(frozen=True)
class Candidate:
    """One class and its probability."""

    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image.

    Attributes:
        path: The image file (or ``None`` for an in-memory image).
        prediction: The predicted class index.
        label: The predicted class name (the digit itself for MNIST).
        probability: Softmax probability of the prediction, in [0, 1].
        top_k: The most probable classes, best first.
    """

    path: str | None
    prediction: int
    label: str
    probability: float
    top_k: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what ``lenet5 predict --json`` prints per image)."""
        return {
            "path": self.path,
            "prediction": self.prediction,
            "label": self.label,
            "probability": self.probability,
            "top_k": [
                {"class": c.index, "label": c.label, "probability": c.probability}
                for c in self.top_k
            ],
        }


class Failure(NamedTuple):
    """A file that could not be classified (a tuple ``(path, message)``).

    Attributes:
        path: The file, as given.
        message: Why, without the path (``str(failure)`` gives ``"path: message"``).
    """

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Predictor:
    """Loads weights once and classifies images in batches.

    The model is built with :meth:`LeNet5.from_pretrained <lenet5.model.LeNet5.from_pretrained>`;
    its record (``model.weights``) gives the normalisation and the class names.

    Args:
        weights: Registry name, folder, ``.safetensors`` file or Hub repo id.
        device: Where to run the model.
        batch_size: Images per forward pass.
        backend: ``"auto"`` (ONNX Runtime on the CPU when it is installed, else PyTorch),
            ``"torch"`` or ``"onnxruntime"``; see :mod:`lenet5.runtime`.

    Example:
        >>> predictor = Predictor("DEFAULT")  # doctest: +SKIP
        >>> predictor.predict(["digit.png"])[0].prediction  # doctest: +SKIP
        7
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] = "DEFAULT",
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        backend: str = "auto",
    ) -> None:
        self.model = LeNet5.from_pretrained(weights, map_location=device)
        assert self.model.weights is not None  # from_pretrained always sets it
        #: The record of the loaded weights (``model.weights``), with normalisation, classes...
        self.weights = self.model.weights
        self.device = torch.device(device)
        self._run = inference_model(self.model, backend)
        #: The backend in use, ``"torch"`` or ``"onnxruntime"``.
        self.backend = "torch" if self._run is self.model else "onnxruntime"
        self.batch_size = batch_size

    @property
    def mean(self) -> float:
        """Normalisation mean of the weights (``weights.mean``)."""
        return self.weights.mean

    @property
    def std(self) -> float:
        """Normalisation standard deviation of the weights (``weights.std``)."""
        return self.weights.std

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, indexed by output (``weights.classes``)."""
        return self.weights.classes

    @torch.inference_mode()
    def predict_tensor(self, images: torch.Tensor, *, top_k: int = 3) -> list[Prediction]:
        """Classify MNIST-like ``uint8`` images of shape ``(N, 28, 28)``."""
        with torch_threads_for(self._run):
            return self._predict_batches(images, min(top_k, len(self.classes)))

    def _predict_batches(self, images: torch.Tensor, k: int) -> list[Prediction]:
        out: list[Prediction] = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = normalize(
                images[start : start + self.batch_size].to(self.device), self.mean, self.std
            )
            probs = torch.softmax(self._run(batch).float(), dim=1).cpu()
            values, indices = probs.topk(k, dim=1)
            for v, i in zip(values.tolist(), indices.tolist(), strict=True):
                top = [Candidate(c, self.classes[c], p) for c, p in zip(i, v, strict=True)]
                out.append(Prediction(None, top[0].index, top[0].label, top[0].probability, top))
        return out

    def predict(self, images: Sequence[Any], *, top_k: int = 3) -> list[Prediction]:
        """Classify pictures: paths, PIL images or tensors (see ``to_mnist``).

        All or nothing: for a per-file report, use :meth:`predict_files`.

        Raises:
            ImageError: For the first image that cannot be read or is blank; the message
                starts with its path, or ``images[i]`` for an in-memory image.
        """
        prepared = []
        for i, image in enumerate(images):
            try:
                prepared.append(to_mnist(image))
            except ImageError as exc:
                if isinstance(image, (str, os.PathLike)):
                    raise  # the message starts with the path
                raise ImageError(f"images[{i}]: {exc}") from None
        if not prepared:
            return []
        predictions = self.predict_tensor(torch.stack(prepared), top_k=top_k)
        return [
            Prediction(
                str(image) if isinstance(image, (str, os.PathLike)) else None,
                p.prediction,
                p.label,
                p.probability,
                p.top_k,
            )
            for image, p in zip(images, predictions, strict=True)
        ]

    def predict_files(
        self, paths: Sequence[str | os.PathLike[str]], *, top_k: int = 3
    ) -> tuple[list[Prediction], list[Failure]]:
        """Classify image files, reporting each one that fails instead of raising.

        A file fails when it is missing, not a regular file (a folder, FIFO, device or
        socket is never opened), empty, truncated, corrupt, not an image, larger than
        ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb), or blank.

        Args:
            paths: The files.
            top_k: How many classes to list per image.

        Returns:
            ``(predictions, failures)``: the classified files in the order given, and a
            :class:`Failure` ``(path, message)`` for each of the others.
        """
        inputs: list[torch.Tensor] = []
        kept: list[Path] = []
        failures: list[Failure] = []
        for path in map(Path, paths):
            try:
                inputs.append(to_mnist(path))
                kept.append(path)
            except ImageError as exc:
                failures.append(Failure(path, str(exc).removeprefix(f"{path}: ")))
            except Exception as exc:  # one bad input must not stop the others
                text = " ".join(str(exc).split())  # one line
                reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
                failures.append(Failure(path, f"cannot prepare the picture ({reason})"))
        if not inputs:
            return [], failures
        predictions = self.predict_tensor(torch.stack(inputs), top_k=top_k)
        results = [
            Prediction(str(path), p.prediction, p.label, p.probability, p.top_k)
            for path, p in zip(kept, predictions, strict=True)
        ]
        return results, failures


def predict_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    weights: str | os.PathLike[str] = "DEFAULT",
    top_k: int = 3,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    backend: str = "auto",
) -> tuple[list[Prediction], list[Failure]]:
    """Classify image files with a new :class:`Predictor`; failures are reported per file.

    See :meth:`Predictor.predict_files`; the other arguments are the :class:`Predictor`'s.

    Returns:
        ``(predictions, failures)``, failures as :class:`Failure` ``(path, message)``.

    Raises:
        WeightsError: If the weights cannot be loaded (nothing is classified then).
    """
    predictor = Predictor(weights, device=device, batch_size=batch_size, backend=backend)
    return predictor.predict_files(paths, top_k=top_k)
