"""The named recipes: TrainConfig.from_recipe, lenet5 train --recipe, the fast recipe."""

from __future__ import annotations

import pytest

from lenet5.training import ConfigError, TrainConfig


def test_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    from lenet5 import TrainConfig
    from lenet5.cli import _config_from_args as config_from_args
    from lenet5.cli import build_parser
    from lenet5.training.config import RECIPES

    assert TrainConfig.from_recipe("reference") == TrainConfig()
    v2 = TrainConfig.from_recipe("mnist-v2", seed=3)
    assert (v2.augment, v2.ema_decay, v2.batch_size, v2.seed) == ("affine", 0.999, 128, 3)
    with pytest.raises(ConfigError, match="unknown recipe"):
        TrainConfig.from_recipe("mnist-v9")
    args = build_parser().parse_args(["train", "--recipe", "mnist-v2", "--epochs", "3"])
    config = config_from_args(args, None)
    assert config.epochs == 3  # an explicit option overrides the recipe
    assert config.optimizer == RECIPES["mnist-v2"]["optimizer"]


def test_fast_recipe_and_engine_options() -> None:
    config = TrainConfig.from_recipe("fast")
    assert (config.epochs, config.batch_size, config.scheduler) == (6, 128, "onecycle")
    assert TrainConfig().engine == "fast"
    with pytest.raises(ConfigError, match="unknown engine 'turbo'; choose one of fast, plain"):
        TrainConfig(engine="turbo")
