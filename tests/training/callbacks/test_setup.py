"""The callbacks that set a run up and pace it: seeding and determinism, device placement,
the validation schedule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import assert_same_weights, quiet, requires_cuda
from lenet5 import Callback, DevicePlacement, ImageSet, Trainer, TrainState

# --------------------------------------------------------------------------------- seeding


def test_deterministic_mode(tiny_train: ImageSet, restore_determinism: None) -> None:
    seen: list[bool] = []

    class Probe(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            seen.append(torch.are_deterministic_algorithms_enabled())

    torch.use_deterministic_algorithms(False)
    a = quiet(epochs=1, deterministic=True, callbacks=[Probe()])
    b = quiet(epochs=1, deterministic=True)
    a.fit(tiny_train)
    assert seen
    assert all(seen)
    assert not torch.are_deterministic_algorithms_enabled()  # ... and put back after it
    b.fit(tiny_train)
    assert_same_weights(a.model, b.model)


def test_unseeded_runs_shuffle_differently(tiny_train: ImageSet) -> None:
    seeds = {quiet(epochs=1, seed=None).fit(tiny_train).generator.initial_seed() for _ in range(3)}
    assert len(seeds) == 3
    assert quiet(epochs=1, seed=9).fit(tiny_train).generator.initial_seed() == 9


@pytest.mark.gpu
@requires_cuda
def test_cuda_deterministic_runs_match(train_1k: ImageSet, restore_determinism: None) -> None:
    a = Trainer(epochs=1, device="cuda", deterministic=True, verbose=False)
    b = Trainer(epochs=1, device="cuda", deterministic=True, verbose=False)
    a.fit(train_1k)
    b.fit(train_1k)
    assert_same_weights(a.model, b.model)


# ------------------------------------------------------------------------ device placement


@dataclasses.dataclass(frozen=True)
class _Tracked(ImageSet):
    """An ImageSet that records every device it is moved to (in ``moves``, shared)."""

    moves: list[str] = dataclasses.field(default_factory=list, compare=False)

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> ImageSet:
        self.moves.append(self.name)
        return self


def test_device_placement_moves_every_validation_set(
    tiny_train: ImageSet, tiny_test: ImageSet
) -> None:
    """It used to move only the first set (``state.val_data``), and validation read all."""
    moves: list[str] = []
    sets = {
        name: _Tracked(
            **{f.name: getattr(tiny_test, f.name) for f in dataclasses.fields(tiny_test)}
        )
        for name in ("a", "b", "c")
    }
    sets = {name: dataclasses.replace(s, name=name, moves=moves) for name, s in sets.items()}
    seen: list[list[object]] = []

    class Look(Callback):
        order = -10  # after DevicePlacement (-90)

        def on_fit_start(self, state: TrainState) -> None:
            seen.append([list(moves), list(state.val_sets.values())])

    Trainer(epochs=1, verbose=False, callbacks=[DevicePlacement("cpu"), Look()]).fit(
        tiny_train, val=sets
    )
    assert seen == [[["a", "b", "c"], list(sets.values())]]


# ----------------------------------------------------------------- the validation schedule


@pytest.mark.parametrize(("every", "validated"), [(2, [2, 4, 5]), (1, [1, 2, 3, 4, 5]), (0, [])])
def test_periodic_validation(
    tiny_train: ImageSet, tiny_test: ImageSet, every: int, validated: list[int]
) -> None:
    state = quiet(epochs=5, val_every=every).fit(tiny_train.subset(slice(0, 32)), tiny_test)
    assert [i + 1 for i, h in enumerate(state.history) if "val_accuracy" in h] == validated
