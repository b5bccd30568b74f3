"""The fast training engine against the plain one: the same mathematics, other kernels."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lenet5 import Trainer
from lenet5.callbacks import Callback
from lenet5.data import ImageSet
from lenet5.training import ConfigError, TrainConfig, TrainState


class Steps(Callback):
    """Stop after ``n`` steps; record what the loop looked like."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.data_kind = ""
        self.fused: object = None
        self.losses: list[torch.Tensor] = []

    def on_epoch_start(self, state: TrainState) -> None:
        self.data_kind = type(state.train_data).__name__
        self.fused = state.optimizer.param_groups[0].get("fused")

    def on_batch_end(self, state: TrainState) -> None:
        loss = state.batch_loss_tensor
        assert loss is not None
        self.losses.append(loss)  # a device tensor: reading it is the callback's choice
        if state.global_step == self.n:
            state.stop()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fast_and_plain_engines_agree(train_1k: ImageSet, optimizer: str) -> None:
    weights = {}
    for engine in ("fast", "plain"):
        steps = Steps(25)
        trainer = Trainer(
            callbacks=[steps],
            engine=engine,
            optimizer=optimizer,
            weight_decay=1e-4,
            scheduler="onecycle",
            epochs=2,
            verbose=False,
            device="cpu",
        )
        trainer.fit(train_1k)
        weights[engine] = trainer.model.state_dict()
        assert len(steps.losses) == 25
        if engine == "fast":
            assert steps.data_kind == "ImageSet"  # resident, sliced on the device
            assert steps.fused is (True if optimizer != "sgd" else None)
        else:
            assert steps.data_kind == DataLoader.__name__
            assert not steps.fused
        # The model leaves fit in the default memory layout, whatever the engine used.
        assert trainer.model.features[0].weight.is_contiguous()
    for name, tensor in weights["fast"].items():
        torch.testing.assert_close(tensor, weights["plain"][name], atol=1e-6, rtol=1e-5)


def test_fast_recipe_and_engine_options() -> None:
    config = TrainConfig.from_recipe("fast")
    assert (config.epochs, config.batch_size, config.scheduler) == (6, 128, "onecycle")
    assert TrainConfig().engine == "fast"
    with pytest.raises(ConfigError, match="unknown engine 'turbo'; choose one of fast, plain"):
        TrainConfig(engine="turbo")
