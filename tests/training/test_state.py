"""TrainState during a fit: what is there when, what a callback may replace, per-fit values."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from helpers import Stream, quiet
from lenet5 import Callback, ImageSet, LeNet5, TrainState


class Probe(Callback):
    """Reads the state where it is not there yet, and writes what a callback may write."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        self.seen["loss before any batch"] = state.batch_loss
        with pytest.raises(RuntimeError, match=r"state\.inputs exists during a training step"):
            _ = state.inputs

    def on_batch_start(self, state: TrainState) -> None:
        state.inputs = state.inputs.flip(3)  # a callback's own augmentation
        state.targets = state.targets.clone()

    def on_batch_end(self, state: TrainState) -> None:
        self.seen.setdefault("batch indices", []).append(state.batch_index)
        self.seen.setdefault("complete", []).append(state.epoch_complete)
        loss = state.batch_loss_tensor
        assert loss is not None
        self.seen.setdefault("losses", []).append(float(loss))
        if state.global_step == 2:
            state.stop("first reason")
            state.stop("second reason")


def test_the_state_of_a_fit_on_data_without_a_length(tiny_train: ImageSet) -> None:
    probe = Probe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uint8 of unknown origin
        state = quiet(epochs=2, callbacks=[probe]).fit(Stream(tiny_train, 96))
    assert probe.seen["loss before any batch"] != probe.seen["loss before any batch"]  # NaN
    assert probe.seen["batch indices"] == [2**32 + 1, 2**32 + 2]  # epoch 1, unique per batch
    assert probe.seen["complete"] == [False, False]  # known only when the data runs out
    assert len(probe.seen["losses"]) == 2
    assert state.stop_reason == "first reason"  # a second stop() keeps the first reason
    assert state.epoch == 1


def test_model_and_optimizer_cannot_be_replaced_during_a_fit(tiny_train: ImageSet) -> None:
    class Swap(Callback):
        def __init__(self, what: str) -> None:
            self.what = what

        def on_epoch_start(self, state: TrainState) -> None:
            if self.what == "model":
                state.model = LeNet5()
            else:
                state.optimizer = torch.optim.SGD(state.model.parameters(), lr=1.0)

    for what in ("model", "optimizer"):
        with pytest.raises(AttributeError, match=f"state.{what} cannot be replaced during a fit"):
            quiet(epochs=1, callbacks=[Swap(what)]).fit(tiny_train)


def test_the_optimizer_is_not_there_before_it_is_built(tiny_train: ImageSet) -> None:
    class Early(Callback):
        def on_fit_start(self, state: TrainState) -> None:
            state.optimizer.zero_grad()

    with pytest.raises(RuntimeError, match="built after on_fit_start"):
        quiet(epochs=1, callbacks=[Early()]).fit(tiny_train)


def test_per_fit_values_live_on_the_state(train_1k: ImageSet) -> None:
    data = train_1k.subset(slice(0, 96))
    trainer = quiet(epochs=1, augment="affine(degrees=10)")
    state = trainer.fit(data)
    assert state.norm == (data.mean, data.std)
    assert state.train_size == 96
    assert state.augment is not None
    assert state.augment_seed == state.generator.initial_seed()
    assert state.process_group.world_size == 1
    assert trainer.state is state
    assert not {"_norm", "_augment", "_augment_seed", "_group", "_train_size"} & set(vars(trainer))
