"""One epoch of a fit: its batches, the steps over them, its metrics, and validation.

:meth:`Trainer.fit <lenet5.training.trainer.Trainer.fit>` sets a run up and calls
:func:`run_epoch` (and, when the epoch is to be validated, :func:`validate`) once per epoch.
These functions keep everything they need on the :class:`~lenet5.training.state.TrainState`,
so an epoch interrupted and restored from a checkpoint goes on exactly as it would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import ImageSet
from ..inference import evaluate, model_input
from .distributed import ShardedBatchSampler, global_batch, shard
from .engine import TrainStep
from .state import TrainState

__all__ = [
    "STOP_CHECK_EVERY",
    "Hook",
    "batch_input",
    "batches",
    "run_epoch",
    "stop_agreed",
    "validate",
]

#: A bound callback hook.
Hook = Callable[[TrainState], None]

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


def run_epoch(
    state: TrainState, step: TrainStep, start_hooks: Sequence[Hook], end_hooks: Sequence[Hook]
) -> None:
    """Train the current epoch from ``state.batch_in_epoch`` on, and set its metrics.

    Args:
        state: The fit; its epoch's running totals are already set (by
            :meth:`~lenet5.training.state.TrainState.begin_epoch` or a restore).
        step: Takes one optimisation step.
        start_hooks: The ``on_batch_start`` hooks, called before every step.
        end_hooks: The ``on_batch_end`` hooks, called after every step.
    """
    loss_sum, correct_sum = state._epoch_loss_sum, state._epoch_correct
    assert loss_sum is not None
    assert correct_sum is not None
    assert state._epoch_generator_state is not None
    # Rewind to the epoch's start so that a resumed epoch draws the same batches.
    state.generator.set_state(state._epoch_generator_state)
    if stop_agreed(state):  # asked for in on_fit_start or on_epoch_start
        return _epoch_metrics(state)
    bs, world = state.config.batch_size, state.world_size
    every = STOP_CHECK_EVERY if world > 1 else 1
    for inputs, targets in batches(state, skip=state.batch_in_epoch):
        for fn in start_hooks:
            fn(state)
        if world > 1:
            positions = global_batch(state.batch_in_epoch, state.train_size, bs, world)
            share = targets.shape[0] / (positions.stop - positions.start)
            loss, correct = step(inputs, targets, share)
        else:
            loss, correct = step(inputs, targets)
        state._batch_loss = loss
        loss_sum += loss
        correct_sum += correct
        state._epoch_seen += targets.shape[0]
        state.batch_in_epoch += 1
        state.global_step += 1
        for fn in end_hooks:
            fn(state)
        check = state.batch_in_epoch % every == 0 or state.epoch_complete
        if check and stop_agreed(state):  # before the next batch is even fetched
            break
    _epoch_metrics(state)


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


def batches(state: TrainState, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's ``(inputs, targets)`` after the first ``skip`` (those a resumed run did)."""
    data = state.train_data
    if isinstance(data, ImageSet):
        # The fast path: one permutation per epoch, batches sliced on the device. Under
        # DDP every process draws the same permutation and takes its slice of each
        # global batch.
        perm = torch.randperm(len(data), generator=state.generator).to(data.device)
        bs, world = state.config.batch_size, state.world_size
        for step in range(skip, state.steps_per_epoch):
            positions = global_batch(step, len(data), bs, world)
            idx = shard(perm[positions], state.rank, world)
            yield batch_input(state, data.images[idx], data.mean, data.std), data.labels[idx]
        return
    assert isinstance(data, DataLoader)
    assert isinstance(data.batch_sampler, ShardedBatchSampler)
    # Skipped in the sampler, not by reading and dropping batches: a transform that draws
    # random numbers then draws exactly as in a run that never stopped.
    data.batch_sampler.start = skip
    for images, labels in data:
        images = images.to(state.device, non_blocking=True)
        yield (
            batch_input(state, images, *state.norm),
            labels.to(state.device, non_blocking=True),
        )


def batch_input(state: TrainState, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """A training batch as the model's input: ``uint8`` images augmented (if the run asks
    for it), then normalised; float images as they are (see
    :func:`lenet5.inference.model_input`)."""
    if state.augment is None or images.dtype != torch.uint8:
        return model_input(images, mean, std)
    x = images.to(torch.float32).div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    # A generator per step, from the seed and the step number: the draws do not depend
    # on anything that came before, so a resumed run augments exactly as the original.
    generator = torch.Generator().manual_seed(
        (state.augment_seed * 1_000_003 + state.global_step) % 2**63
    )
    return state.augment(x, generator).sub_(mean).div_(std)


def validate(state: TrainState) -> tuple[float, float]:
    """Validation loss and accuracy (percent) of the model, or of its EMA when there is one.

    Under DDP each process evaluates its slice of the validation data and the totals are
    summed, so every process gets the numbers of the whole data.
    """
    model = state.ema.module if state.ema is not None else state.model
    data = state.val_data
    assert data is not None
    batch_size = state.config.eval_batch_size
    if state.world_size == 1:
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
