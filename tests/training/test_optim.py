"""Optimizers, schedules and mixed precision as the fit builds them (lenet5.training.optim)."""

from __future__ import annotations

import pytest
import torch

from helpers import quiet, same, weights
from lenet5 import Callback, ImageSet, TrainConfig, Trainer, TrainState
from lenet5.training import ConfigError


def test_callable_optimizer_and_scheduler(tiny_train: ImageSet) -> None:
    def make_sgd(params: object) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.01)  # type: ignore[arg-type]

    def make_step(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        assert total == 2
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    config = TrainConfig(optimizer=make_sgd, scheduler=make_step, lr=0.01, verbose=False)
    # Keyword overrides on top of a config keep the callables (not their names).
    trainer = Trainer(config=config, epochs=1, device="cpu")
    assert trainer.config.optimizer is make_sgd
    assert trainer.config.scheduler is make_step
    state = trainer.fit(tiny_train)
    assert isinstance(state.optimizer, torch.optim.SGD)
    assert state.history[0]["lr"] == pytest.approx(0.0025)
    assert trainer.config.to_dict()["optimizer"].endswith("make_sgd")


def test_lr_and_weight_decay_reach_a_callable_optimizer(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1, optimizer=torch.optim.SGD, lr=0.05, weight_decay=0.01).fit(tiny_train)
    group = state.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.05, 0.01)
    with pytest.raises(ConfigError, match=r"uses lr=0\.3.*set to lr=0\.02"):
        quiet(epochs=1, lr=0.02, optimizer=lambda p: torch.optim.SGD(p, lr=0.3)).fit(tiny_train)
    # A callable's own rate, with lr left at its default, becomes the recorded one.
    own = quiet(epochs=1, optimizer=lambda p: torch.optim.SGD(p, lr=0.3))
    assert own.fit(tiny_train).optimizer.param_groups[0]["lr"] == 0.3
    assert own.config.lr == 0.3


def test_scheduler_none_by_name(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1, scheduler="none").fit(tiny_train)
    assert state.scheduler is None
    assert state.global_step == 2


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_the_cpu_is_deterministic(
    precision: str, train_1k: ImageSet, tiny_test: ImageSet
) -> None:
    dtypes: list[torch.dtype] = []

    class Dtype(Callback):
        def on_before_backward(self, state: TrainState) -> None:
            dtypes.append(state.logits.dtype)

    runs = [quiet(epochs=1, precision=precision, seed=3) for _ in range(2)]
    runs[0].callbacks.append(Dtype())
    runs[0]._bind_hooks(0)
    states = [t.fit(train_1k, tiny_test) for t in runs]
    expected = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    assert set(dtypes) == {expected}
    assert (states[0].scaler is not None) == (precision == "16-mixed")
    assert same(weights(runs[0].model), weights(runs[1].model))
    assert next(runs[0].model.parameters()).dtype == torch.float32
    assert states[0].history[-1]["val_accuracy"] > 40.0
