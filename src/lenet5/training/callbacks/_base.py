"""The callback API: :class:`Callback`, its hooks, and the check that a callback is well formed."""

from __future__ import annotations

from typing import Any, ClassVar

from ..._hints import did_you_mean
from ..state import TrainState

__all__ = ["HOOKS", "Callback", "CallbackError", "UnknownCallbackError", "check_callback"]


class CallbackError(TypeError):
    """A callback is malformed (e.g. a misspelt hook), or a plugin fails to load."""


class UnknownCallbackError(CallbackError, LookupError):
    """No built-in or plugin callback has the name asked for."""


class Callback:
    """Base class of all callbacks.

    Override any hook in :data:`HOOKS`. A method whose name starts with ``on_`` but is not a
    hook is rejected when the callback is registered, so a typo never silently does nothing.

    Attributes:
        order: Position among the callbacks; lower runs first, ties keep list order.
        rank_zero_only: Run the hooks only in the main process (rank 0) of a distributed
            run, as loggers and checkpoint writers should. ``state.rank`` and
            ``state.is_main_process`` are there for callbacks that decide for themselves.
    """

    order: ClassVar[int] = 0
    rank_zero_only: ClassVar[bool] = False

    @property
    def key(self) -> str:
        """The name under which this callback's state is stored in checkpoints."""
        return type(self).__name__

    # The hooks, in the order a fit calls them: HOOKS below is read from this class body,
    # so a new hook is added here and nowhere else.

    def on_fit_start(self, state: TrainState) -> None:
        """Called once before training, before the optimizer is built."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Called at the start of every epoch (``state.epoch`` is already the new epoch)."""

    def on_batch_start(self, state: TrainState) -> None:
        """Called before every batch's forward pass, with ``state.inputs`` (the model's
        input, normalised and augmented) and ``state.targets`` (class indices or
        probabilities) set: replace them here to change what the step trains on (mixup,
        soft targets from a teacher)."""

    def on_before_backward(self, state: TrainState) -> None:
        """Called after the forward pass and the loss, before the backward pass:
        ``state.logits`` is the model's output and ``state.loss`` the loss; replace
        ``state.loss`` (a scalar tensor with a graph) to change what is back-propagated (an
        auxiliary loss). Under ``precision="*-mixed"`` this runs outside autocast."""

    def on_before_optimizer_step(self, state: TrainState) -> None:
        """Called once per optimizer step (every ``accumulate_grad_batches`` batches), with
        the summed gradients in ``p.grad``, unscaled under ``"16-mixed"``, before
        ``grad_clip_norm`` clips them: clip or inspect them here."""

    def on_after_optimizer_step(self, state: TrainState) -> None:
        """Called once per optimizer step, right after ``optimizer.step()`` (gradients
        zeroed, ``state.global_step`` already counting this step), before the schedule
        steps and before the EMA averages the new weights: change ``state.model``'s
        weights in place here (pruning masks, weight clipping, projections) and the EMA
        (``state.ema.module``, the averaged copy the fit returns) averages what you
        leave."""

    def on_batch_end(self, state: TrainState) -> None:
        """Called after every batch (``state.batch_loss`` is its loss; ``global_step`` has
        moved on if the batch ended an accumulation group)."""

    def on_validation_end(self, state: TrainState) -> None:
        """Called after every validation, with ``val_loss`` and ``val_accuracy`` (and
        ``val_<name>_*`` for named sets) in ``state.metrics``: at the end of the epochs
        ``val_every`` names, and between batches every ``val_every_steps`` steps
        (``state.epoch_complete`` tells which)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called at the end of every epoch, after validation if there was one."""

    def on_fit_end(self, state: TrainState) -> None:
        """Called once after training ends normally (also after :meth:`TrainState.stop`)."""

    def on_exception(self, state: TrainState) -> None:
        """Called when training fails; ``state.exception`` holds the exception."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (tensors, numbers, strings, lists and dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order})"


#: The hook names in the order a fit calls them, :class:`Callback`'s ``on_*`` methods in the
#: order the class defines them.
HOOKS: tuple[str, ...] = tuple(name for name in vars(Callback) if name.startswith("on_"))


def check_callback(callback: object) -> None:
    """Reject objects that are not usable callbacks.

    Raises:
        CallbackError: If ``callback`` is not a :class:`Callback`, or defines an ``on_*``
            method that is not a hook (a misspelt hook would otherwise never run).
    """
    if not isinstance(callback, Callback):
        raise CallbackError(
            f"{callback!r} is not a lenet5.Callback; subclass lenet5.Callback, or pass the "
            "name of a built-in or plugin callback"
        )
    for name in dir(type(callback)):
        if name.startswith("on_") and name not in HOOKS and callable(getattr(callback, name)):
            raise CallbackError(
                f"{type(callback).__name__}.{name} is not a hook{did_you_mean(name, HOOKS)}; "
                f"hooks: {', '.join(HOOKS)}"
            )
