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

    Under DDP each process sees its slice of the global batch; ``share`` is the slice's
    fraction of it. The loss that is back-propagated is weighted by ``share * world_size``,
    so that DDP's gradient *average* over processes is the gradient of the global batch's
    mean loss even when the slices differ in size; the returned loss is weighted by
    ``share``, so that the processes' values sum to the global batch's mean loss.

    Args:
        model: The model (in training mode), or its DDP wrapper.
        optimizer: Its optimizer.
        loss_fn: ``loss_fn(logits, targets)``, a scalar.
        scheduler: Stepped after every optimizer step, or ``None``.
        ema: An averaged copy of the model, updated after every step, or ``None``.
        world_size: Number of processes (1 without DDP).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        ema: AveragedModel | None = None,
        world_size: int = 1,
    ) -> None:
        self.model = model
        # The module whose weights the EMA follows: the model itself, not a DDP wrapper.
        inner = getattr(model, "module", model)
        self.inner: nn.Module = inner if isinstance(inner, nn.Module) else model
        self.world_size = world_size
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.ema = ema

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, share: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(inputs)
        loss = self.loss_fn(logits, targets)
        if self.world_size > 1:
            (loss * (share * self.world_size)).backward()  # type: ignore[no-untyped-call]
            loss = loss * share
        else:
            loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.inner)
        correct = (logits.detach().argmax(dim=1) == targets).sum()
        return loss.detach(), correct
