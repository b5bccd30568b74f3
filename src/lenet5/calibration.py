"""Calibrated confidence: temperature scaling and the expected calibration error.

A classifier trained with cross-entropy is often over- or under-confident: among the
digits it calls with 95% confidence, more or fewer than 95% are right. Temperature scaling
(Guo et al., 2017, *On Calibration of Modern Neural Networks*) divides the logits by one
number ``T`` fitted on held-out data, which changes the probabilities but never the
predicted class. :func:`fit_temperature` finds ``T`` by minimising the negative
log-likelihood of a validation split; :func:`expected_calibration_error` measures the gap
between confidence and accuracy (ECE, 15 equal-width bins by default).

These are a few lines of torch, written here rather than taken from a library:
torchmetrics has a ``CalibrationError`` but is not a dependency of this package, and
temperature scaling itself is one scalar optimised with L-BFGS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["ECE_BINS", "expected_calibration_error", "fit_temperature"]

#: The bins of :func:`expected_calibration_error` by default (Guo et al.'s 15).
ECE_BINS = 15


def _checked(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if logits.shape[0] == 0:
        raise ValueError("calibration needs at least one example")
    logits = logits.detach().to(torch.float64, copy=True).cpu()
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("the logits hold NaN or infinite values")
    return logits, labels.detach().cpu().long()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature ``T > 0`` that makes ``softmax(logits / T)`` best calibrated on
    ``(logits, labels)``, a held-out split (never the test set).

    ``log T`` is optimised with L-BFGS (strong Wolfe line search) on the mean negative
    log-likelihood, in float64; ``T`` is clamped to ``[0.05, 20]``.

    Args:
        logits: ``(N, C)`` logits of the validation images.
        labels: ``(N,)`` their class indices.

    Returns:
        ``T`` (``1.0`` leaves the probabilities as they are; above 1 softens them).

    Raises:
        ValueError: For mismatched shapes, no examples or non-finite logits.
    """
    logits, labels = _checked(logits, labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe", tolerance_grad=1e-10
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):  # pragma: no cover - L-BFGS on a convex 1-D loss
        return 1.0
    return min(max(temperature, 0.05), 20.0)


def expected_calibration_error(
    probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS
) -> float:
    """The expected calibration error, in percent: the mean over equal-width confidence
    bins of ``|accuracy - mean confidence|``, weighted by the share of examples in each.

    Args:
        probabilities: ``(N, C)`` predicted probabilities (rows summing to 1).
        labels: ``(N,)`` the true classes.
        bins: The number of equal-width bins of ``(0, 1]``.

    Returns:
        ECE in percent (``1.5`` means 1.5 points between confidence and accuracy).

    Raises:
        ValueError: For mismatched shapes, no examples, or ``bins < 1``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    probabilities, labels = _checked(probabilities, labels)
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).to(torch.float64)
    # Bin k holds confidences in (k/bins, (k+1)/bins]; a confidence of 0 joins bin 0.
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    gap = torch.zeros(bins, dtype=torch.float64)
    gap.index_add_(0, index, correct - confidence)
    return float(gap.abs().sum() / len(labels) * 100.0)
