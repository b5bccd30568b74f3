"""Helpers shared by the test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lenet5 import Callback, Trainer
from lenet5.training.state import TrainState


def quiet(model: nn.Module | None = None, **kwargs: Any) -> Trainer[Any]:
    """A CPU trainer that prints nothing."""
    return Trainer(model, **{"verbose": False, "device": "cpu", **kwargs})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a model's state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts have the same keys and bitwise equal tensors."""
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


class StopAtBatch(Callback):
    """Stops the fit after batch ``batch`` (counted from 1) of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch and state.batch_in_epoch == self.batch:
            state.stop("stopped by the test")
