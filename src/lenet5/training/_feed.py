"""The training data of a fit, fed batch by batch: resident, sampled, or as the user gave it.

Three paths, chosen when the fit starts (:func:`feed`):

- an :class:`~lenet5.data.ImageSet` on the ``fast`` engine stays resident on the device
  and is sliced into shuffled batches there (no per-sample Python);
- any other map-style data (a dataset, a list of items, or an ImageSet on the ``plain``
  engine) goes through a :class:`~torch.utils.data.DataLoader` whose batches the trainer
  samples (:class:`~lenet5.training.distributed.ShardedBatchSampler`), so that DDP shards
  it and a resumed epoch skips its done batches without reading them;
- a DataLoader or an :class:`~torch.utils.data.IterableDataset` is iterated as given (its
  order, batch size and collation are its own); a resumed epoch rewinds torch's global
  generator to where the epoch's iteration began, reads and drops the done batches, and
  puts the generator back, so a loader whose order comes from that generator (``shuffle=
  True`` without a generator of its own) resumes exactly.

Import from :mod:`lenet5.training.loop`'s users only; this module keeps that one small.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import DataError, ImageSet, collate, data_length, is_given_loader, warn_default_norm
from ..inference import model_input
from .distributed import ShardedBatchSampler, global_batch, shard, steps_per_epoch
from .state import TrainState

__all__ = ["batch_input", "batches", "feed"]


def feed(state: TrainState, train: object) -> None:
    """Set ``state.train_data``, ``train_size`` and ``steps_per_epoch`` for ``train``."""
    config = state.config
    resident = state.train_data if isinstance(state.train_data, ImageSet) else None
    if is_given_loader(train) and resident is None:
        _feed_given(state, train)
        return
    state.train_size = len(cast("Any", resident if resident is not None else train))
    if resident is None or config.engine == "plain":
        dataset = resident.to("cpu").as_dataset() if resident is not None else train
        sampler = ShardedBatchSampler(
            state.train_size, config.batch_size, state.rank, state.world_size, state.generator
        )
        state.train_data = DataLoader(
            cast("Dataset[Any]", dataset),
            batch_sampler=sampler,
            collate_fn=collate,
            pin_memory=state.device.type == "cuda",
            # Its own generator for the workers' seeds, drawn at every epoch's start:
            # otherwise that draw comes from torch's global one, and a run resumed
            # mid-epoch (which starts its epoch again) would be one draw off.
            generator=torch.Generator(),
        )
    state.steps_per_epoch = steps_per_epoch(state.train_size, config.batch_size, state.world_size)
    if state.train_size == 0:
        raise DataError("the training data is empty")
    if state.steps_per_epoch == 0:
        raise DataError(
            f"{state.train_size} training examples cannot feed {state.world_size} "
            "processes; use more data or fewer processes"
        )


def _feed_given(state: TrainState, train: Any) -> None:
    """A DataLoader or IterableDataset, iterated as given."""
    if state.world_size > 1:
        raise DataError(
            "under DDP the trainer shards the training data itself: give an ImageSet or a "
            f"map-style dataset, not a {type(train).__name__}"
        )
    if not isinstance(train, DataLoader):
        train = DataLoader(train, batch_size=state.config.batch_size, collate_fn=collate)
    state.train_data = train
    # A loader's length is its number of batches; an iterable's may be unknown (0).
    state.steps_per_epoch = data_length(train) or 0
    size = data_length(train.dataset)
    state.train_size = size if size is not None else 0


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
    if isinstance(data.batch_sampler, ShardedBatchSampler):
        # Skipped in the sampler, not by reading and dropping batches: a transform that
        # draws random numbers then draws exactly as in a run that never stopped.
        data.batch_sampler.start = skip
        loader: Iterator[Any] = iter(data)
    else:
        loader = _given(state, data, skip)
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(
                f"the training data gives {type(batch).__name__} batches; training needs "
                "(images, targets)"
            )
        images, targets = batch[0], batch[1]
        images = images.to(state.device, non_blocking=True)
        yield batch_input(state, images, *state.norm), targets.to(state.device, non_blocking=True)


def _given(state: TrainState, data: DataLoader[Any], skip: int) -> Iterator[Any]:
    """A given loader's iterator with the ``skip`` done batches read and dropped."""
    if skip == 0:
        state._epoch_torch_rng = torch.get_rng_state()  # where this epoch's order is drawn
        return iter(data)
    assert state._epoch_torch_rng is not None
    now = torch.get_rng_state()
    torch.set_rng_state(state._epoch_torch_rng)
    it = iter(data)
    for done in range(skip):
        if next(it, None) is None:
            raise DataError(
                f"the resumed epoch's data ran out after {done} batches, before the "
                f"{skip} that the checkpoint had done; resume with the same data"
            )
    torch.set_rng_state(now)
    return it


def batch_input(state: TrainState, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """A training batch as the model's input: ``uint8`` images augmented (if the run asks
    for it), then normalised; float images as they are (see
    :func:`lenet5.inference.model_input`)."""
    if images.dtype == torch.uint8 and state._norm_unknown:
        warn_default_norm(stacklevel=6)  # once per fit: the statistics are a guess
        state._norm_unknown = False
    if state.augment is None or images.dtype != torch.uint8:
        return model_input(images, mean, std)
    x = images.to(torch.float32).div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    # A generator per batch, from the seed and the batch's place in the run: the draws
    # do not depend on anything that came before, so a resumed run augments exactly as
    # the original.
    generator = torch.Generator().manual_seed(
        (state.augment_seed * 1_000_003 + state.batch_index) % 2**63
    )
    return state.augment(x, generator).sub_(mean).div_(std)
