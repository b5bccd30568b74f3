"""How one optimisation step runs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["LossFn", "TrainStep"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrainStep:
    """One optimisation step: forward, loss, backward, optimizer and scheduler.

    Returns the loss and the number of correctly classified examples, as detached device
    tensors, so the loop never waits for the device.

    Args:
        model: The model (in training mode).
        optimizer: Its optimizer.
        loss_fn: ``loss_fn(logits, targets)``, a scalar.
        scheduler: Stepped after every optimizer step, or ``None``.
        ema: An averaged copy of the model, updated after every step, or ``None``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        ema: AveragedModel | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.ema = ema

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(inputs)
        loss = self.loss_fn(logits, targets)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        correct = (logits.detach().argmax(dim=1) == targets).sum()
        return loss.detach(), correct
