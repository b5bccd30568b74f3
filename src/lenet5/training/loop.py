"""One epoch of a fit: its batches, the steps over them, its metrics, and validation.

:meth:`Trainer.fit <lenet5.training.trainer.Trainer.fit>` sets a run up and calls
:func:`run_epoch` (and, when the epoch is to be validated, :func:`validate`) once per epoch.
These functions keep everything they need on the :class:`~lenet5.training.state.TrainState`,
so an epoch interrupted and restored from a checkpoint goes on exactly as it would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch.utils.data import Dataset, Subset

from ..data import ImageSet, is_given_loader
from ..inference import evaluate
from ._feed import batches
from .distributed import global_batch, shard
from .engine import Hook, TrainStep
from .state import TrainState

__all__ = [
    "STOP_CHECK_EVERY",
    "UNNAMED",
    "run_epoch",
    "stop_agreed",
    "validate",
]

#: The name of a validation set given alone (not in a dict): its metrics are only
#: ``val_loss`` and ``val_accuracy``.
UNNAMED = ""

#: Under DDP, the processes agree on a stop (:func:`stop_agreed`) after every this many
#: batches of an epoch, after its last batch and after every epoch, so that a
#: ``state.stop()`` on any one process takes effect on all of them after the same batch.
#: Each agreement is one all-reduce of a single number (on 2 CPU processes with gloo about
#: 0.5 ms, against 15 ms for a step of 16 images per process on a loaded 2-core machine):
#: every 8 batches keeps it below 0.5% of the training time.
STOP_CHECK_EVERY = 8


def stop_agreed(state: TrainState) -> bool:
    """Whether the run stops here: ``state.stop()`` was called on this process or, under
    DDP, on any process (then every process adopts the lowest-ranked one's reason).

    Under DDP this is a collective, which every process reaches at the same points of the
    run; a stop asked for in between waits for the next of them.
    """
    if state.world_size == 1:
        return state.stop_requested
    reason = state.process_group.first_stop(state.stop_reason)
    if reason is not None and not state.stop_requested:
        state.stop(reason)
    return reason is not None


def run_epoch(state: TrainState, step: TrainStep, hooks: Mapping[str, Sequence[Hook]]) -> None:
    """Train the current epoch from ``state.batch_in_epoch`` on, and set its metrics.

    Each batch sets ``state.inputs`` and ``state.targets``, runs the ``on_batch_start``
    hooks, the step (which runs ``on_before_backward`` and, at the end of an accumulation
    group, ``on_before_optimizer_step``) and the ``on_batch_end`` hooks. A stop, and a
    validation every ``val_every_steps``, happen only between accumulation groups, so that
    no summed gradient is ever lost to a checkpoint.

    Args:
        state: The fit; its epoch's running totals are already set (by
            :meth:`~lenet5.training.state.TrainState.begin_epoch` or a restore).
        step: Trains on one batch.
        hooks: The bound hooks by name.
    """
    loss_sum, correct_sum = state._epoch_loss_sum, state._epoch_correct
    assert loss_sum is not None
    assert correct_sum is not None
    assert state._epoch_generator_state is not None
    # Rewind to the epoch's start so that a resumed epoch draws the same batches.
    state.generator.set_state(state._epoch_generator_state)
    if stop_agreed(state):  # asked for in on_fit_start or on_epoch_start
        return _epoch_metrics(state)
    k, steps = state.config.accumulate_grad_batches, state.steps_per_epoch
    pending = 0  # batches of the current group whose gradients await the optimizer step
    for inputs, targets in batches(state, skip=state.batch_in_epoch):
        state._inputs, state._targets, state._labels = inputs, targets, targets
        state._logits = state._loss = None
        for fn in hooks["on_batch_start"]:
            fn(state)
        b = state.batch_in_epoch
        ends_group = (b + 1) % k == 0 or b + 1 == steps
        # A sized epoch's short last group is averaged over its own size.
        group = min(k, steps - (b - b % k)) if steps else k
        loss, correct = step(state, group=group, last=ends_group, share=_share(state))
        pending = 0 if ends_group else pending + 1
        state._batch_loss = loss
        loss_sum += loss
        correct_sum += correct
        state._epoch_seen += int(state.targets.shape[0])
        state.batch_in_epoch += 1
        for fn in hooks["on_batch_end"]:
            fn(state)
        if ends_group and _between_groups(state, hooks):
            break
    else:
        state._exhausted = True
        if pending:  # data without a length ended inside a group: step on what it has
            step.optimizer_step(state, correction=k / pending)
    state._inputs = state._targets = state._labels = state._logits = state._loss = None
    _epoch_metrics(state)


def _share(state: TrainState) -> float:
    """This process's fraction of the current global batch (1 without DDP)."""
    if state.world_size == 1:
        return 1.0
    bs = state.config.batch_size
    positions = global_batch(state.batch_in_epoch, state.train_size, bs, state.world_size)
    return float(state.targets.shape[0] / (positions.stop - positions.start))


def _between_groups(state: TrainState, hooks: Mapping[str, Sequence[Hook]]) -> bool:
    """After an optimizer step: validate if ``val_every_steps`` says so; whether to stop."""
    every_steps = state.config.val_every_steps
    at_epoch_end = state.epoch_complete and state.validate  # validated there anyway
    due = every_steps and state.global_step % every_steps == 0 and not at_epoch_end
    if due and state.val_sets:
        state.metrics.update(validate(state))
        for fn in hooks["on_validation_end"]:
            fn(state)
    groups_done = -(-state.batch_in_epoch // state.config.accumulate_grad_batches)
    every = STOP_CHECK_EVERY if state.world_size > 1 else 1
    # Before the next batch is even fetched.
    return (groups_done % every == 0 or state.epoch_complete) and stop_agreed(state)


def _epoch_metrics(state: TrainState) -> None:
    """``loss`` and ``accuracy`` of the epoch so far, over all processes."""
    loss_sum, correct = state._epoch_loss_sum, state._epoch_correct
    assert loss_sum is not None
    assert correct is not None
    batches_done = max(state.batch_in_epoch, 1)
    if state.world_size == 1:
        state.metrics["loss"] = float(loss_sum) / batches_done
        state.metrics["accuracy"] = state.epoch_accuracy
        return
    # One synchronisation per epoch, not per step.
    loss_total, correct_total, seen = _sum_over_processes(
        state, loss_sum, correct, float(state._epoch_seen)
    )
    state.metrics["loss"] = loss_total / batches_done
    state.metrics["accuracy"] = 100.0 * correct_total / seen if seen else float("nan")


def _sum_over_processes(state: TrainState, *values: torch.Tensor | float) -> list[float]:
    """Each of ``values`` summed over the processes, in float64 (one collective for all)."""
    totals = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64, device=state.device) for v in values]
    )
    state.process_group.all_reduce(totals)
    return cast("list[float]", totals.tolist())


def validate(state: TrainState) -> dict[str, float]:
    """The validation metrics of every set in ``state.val_sets``: ``val_<name>_loss`` and
    ``val_<name>_accuracy`` (percent) for named sets, and ``val_loss`` / ``val_accuracy``
    for the first one. The model is evaluated as it is, or its EMA when there is one; the
    loss is the cross-entropy against the validation labels, whatever ``loss_fn`` trains.
    """
    metrics: dict[str, float] = {}
    for i, (name, data) in enumerate(state.val_sets.items()):
        loss, accuracy = _validate_one(state, data)
        if i == 0:
            metrics["val_loss"], metrics["val_accuracy"] = loss, accuracy
        if name != UNNAMED:
            metrics[f"val_{name}_loss"], metrics[f"val_{name}_accuracy"] = loss, accuracy
    return metrics


def _validate_one(state: TrainState, data: Any) -> tuple[float, float]:
    """Validation loss and accuracy (percent) on one set.

    Under DDP each process evaluates its slice of a set it can slice (an ImageSet or a
    map-style dataset) and the totals are summed, so every process gets the numbers of the
    whole set; a DataLoader or an iterable is evaluated whole by every process.
    """
    model = state.ema.module if state.ema is not None else state.model
    batch_size = state.config.eval_batch_size
    sliceable = isinstance(data, ImageSet) or not is_given_loader(data)
    if state.world_size == 1 or not sliceable:
        result = evaluate(model, data, batch_size=batch_size, norm=state.norm)
        return result.loss, result.accuracy
    indices = shard(torch.arange(len(data)), state.rank, state.world_size)
    part: ImageSet | Dataset[Any] = (
        data.subset(indices)
        if isinstance(data, ImageSet)
        else Subset(cast("Dataset[Any]", data), indices.tolist())
    )
    totals: tuple[float, float, float] = (0.0, 0.0, 0.0)
    if len(indices):
        result = evaluate(model, part, batch_size=batch_size, norm=state.norm)
        totals = (result.loss * result.total, float(result.correct), float(result.total))
    loss_sum, correct, total = _sum_over_processes(state, *totals)
    return loss_sum / total, 100.0 * correct / total
