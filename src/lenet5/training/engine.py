"""One training batch: forward, loss, backward and, at the end of each accumulation group,
the optimizer step; with the hooks that shape it.

The step reads the batch from the :class:`~lenet5.training.state.TrainState` and writes
what it computes back there, so that callbacks can see and change it: ``on_batch_start``
(before the step) may replace ``state.inputs`` and ``state.targets``, ``on_before_backward``
sees ``state.logits`` and may replace ``state.loss``, ``on_before_optimizer_step`` runs
with the summed, unscaled gradients in place, before any clipping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from .precision import Precision

if TYPE_CHECKING:
    from .state import TrainState

__all__ = ["Hook", "LossFn", "TrainStep"]

#: ``loss_fn(logits, targets)``: a scalar tensor. Targets are class indices ``(N,)`` or
#: probabilities ``(N, C)``.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A bound callback hook.
Hook = Callable[["TrainState"], None]


class TrainStep:
    """Runs one batch of training on the state's ``inputs`` and ``targets``.

    Returns the batch's loss and its number of correctly classified examples as detached
    device tensors, so the loop never waits for the device.

    The back-propagated loss is divided by the accumulation group's size and, under DDP,
    weighted by ``share * world_size`` (``share``: this process's fraction of the global
    batch), so that DDP's gradient average over processes, summed over the group, is the
    gradient of the mean loss over the group's examples even when the slices differ in
    size. The returned loss is weighted by ``share``, so that the processes' values sum to
    the global batch's mean loss.

    Args:
        forward: What computes the logits: the model, or its compiled or DDP wrapper.
        loss_fn: ``loss_fn(logits, targets)``, a scalar.
        precision: Autocast (and the scaler's dtype) of the forward pass and the loss.
        hooks: The bound hooks by name (``on_before_backward``,
            ``on_before_optimizer_step``).
        world_size: Number of processes (1 without DDP).
    """

    def __init__(
        self,
        forward: nn.Module,
        loss_fn: LossFn,
        precision: Precision,
        hooks: Mapping[str, Sequence[Hook]],
        world_size: int = 1,
    ) -> None:
        self.forward = forward
        self.loss_fn = loss_fn
        self.precision = precision
        self.before_backward = hooks.get("on_before_backward", ())
        self.before_optimizer_step = hooks.get("on_before_optimizer_step", ())
        self.world_size = world_size

    def __call__(
        self,
        state: TrainState,
        *,
        group: int = 1,
        last: bool = True,
        share: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on the state's batch.

        Args:
            state: The fit, with ``inputs`` and ``targets`` set.
            group: The accumulation group's number of batches (``accumulate_grad_batches``).
            last: Whether this batch ends its group: then the optimizer steps.
            share: This process's fraction of the global batch (DDP).
        """
        inputs, targets = state.inputs, state.targets  # as on_batch_start left them
        # Between optimizer steps DDP need not average the gradients: they are summed.
        no_sync = getattr(self.forward, "no_sync", None)
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with self.precision.autocast():
                state.logits = self.forward(inputs)
                state.loss = self.loss_fn(state.logits, targets)
            for fn in self.before_backward:
                fn(state)
            loss = _checked_loss(state.loss)
            weight = share * self.world_size / group
            scaled = loss * weight if weight != 1.0 else loss
            if state.scaler is not None:
                scaled = state.scaler.scale(scaled)
            scaled.backward()  # type: ignore[no-untyped-call]
        if last:
            self.optimizer_step(state)
        # The data's labels, not targets a callback mixed or softened (the targets when the
        # step is driven without a loop, which sets no labels).
        labels = state._labels if state._labels is not None else targets
        hard = labels.argmax(dim=1) if labels.dim() == 2 else labels
        correct = (state.logits.detach().argmax(dim=1) == hard).sum()
        reported = loss.detach().float()
        return (reported * share if self.world_size > 1 else reported), correct

    def optimizer_step(self, state: TrainState, correction: float = 1.0) -> None:
        """Unscale, hooks, clip, step the optimizer (and the scheduler and EMA), zero.

        Args:
            state: The fit, with the group's summed gradients in place.
            correction: Factor for those gradients: ``k/n`` for a group of ``n`` batches
                whose losses were divided by ``k`` (the short last group of data without a
                length, found out only when the data ran out).
        """
        optimizer, scaler = state.optimizer, state.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)
        if correction != 1.0:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(correction)
        for fn in self.before_optimizer_step:
            fn(state)
        clip = state.config.grad_clip_norm
        if clip is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            state.grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if state.scheduler is not None:
            state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(state.model)
        state.global_step += 1


def _checked_loss(loss: object) -> torch.Tensor:
    """The loss to back-propagate, or an error naming what is wrong with it."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(
            f"the loss must be a scalar tensor (loss_fn or state.loss), got {shape}; "
            "reduce it, e.g. with .mean()"
        )
    if not loss.requires_grad:
        raise TypeError(
            "the loss has no gradient graph: compute it from state.logits (or other "
            "tensors that require grad) inside the step, not under torch.no_grad()"
        )
    return loss.reshape(())
