"""Batched on-device augmentation and weight averaging in the Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenet5 import Callback, ImageSet, Trainer, TrainState
from lenet5.augment import Compose, ElasticDistortion, RandomAffine, parse_augment
from lenet5.training import Checkpoint, ConfigError


def _batch(images: ImageSet, n: int = 16) -> torch.Tensor:
    return images.images[:n].float().div(255).unsqueeze(1)


def test_same_generator_same_result_and_real_change(tiny_train: ImageSet) -> None:
    x = _batch(tiny_train)
    for aug in (RandomAffine(), ElasticDistortion(alpha=8, sigma=3)):
        a = aug(x, torch.Generator().manual_seed(1))
        b = aug(x, torch.Generator().manual_seed(1))
        c = aug(x, torch.Generator().manual_seed(2))
        assert a.shape == x.shape
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert (a - x).abs().mean() > 0.01  # it does move the digits
        assert a.min() >= 0
        assert a.max() <= 1 + 1e-6


def test_zero_strength_is_the_identity(tiny_train: ImageSet) -> None:
    x = _batch(tiny_train)
    still = Compose(
        [RandomAffine(degrees=0, translate=0, scale=(1, 1), shear=0), ElasticDistortion(alpha=0)]
    )
    assert torch.allclose(still(x, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_affine_rotates_by_the_drawn_angle() -> None:
    # A single bright pixel right of the centre ends up rotated around the centre.
    x = torch.zeros(1, 1, 29, 29)
    x[0, 0, 14, 24] = 1.0
    out = RandomAffine(degrees=90, translate=0, scale=(1, 1), shear=0)(
        x, torch.Generator().manual_seed(3)
    )
    angle = (torch.rand(1, generator=torch.Generator().manual_seed(3)) * 180 - 90).item()
    ys, xs = torch.meshgrid(torch.arange(29.0), torch.arange(29.0), indexing="ij")
    mass = out[0, 0]
    cy, cx = (mass * ys).sum() / mass.sum() - 14, (mass * xs).sum() / mass.sum() - 14
    measured = torch.rad2deg(torch.atan2(cy, cx)).item()
    assert abs(measured - angle) < 3, (measured, angle)


def test_parse_augment_specs() -> None:
    aug = parse_augment("affine(degrees=15,translate=0.12,scale=0.2,shear=5),elastic(alpha=8)")
    assert aug is not None
    affine, elastic = aug.augmentations
    assert affine == RandomAffine(degrees=15, translate=0.12, scale=(0.8, 1.2), shear=5)
    assert elastic == ElasticDistortion(alpha=8, sigma=4)
    assert parse_augment(None) is None
    assert parse_augment("none") is None
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        parse_augment("flip")
    with pytest.raises(ValueError, match="no argument 'sigmaa'"):
        parse_augment("elastic(sigmaa=3)")
    with pytest.raises(ConfigError, match="augment"):
        Trainer(augment="affine(degrees=x)")
    with pytest.raises(ConfigError, match="ema_decay"):
        Trainer(ema_decay=1.5)


RECIPE = dict(
    epochs=2,
    batch_size=64,
    optimizer="adamw",
    lr=3e-3,
    scheduler="onecycle",
    label_smoothing=0.05,
    ema_decay=0.9,
    augment="affine,elastic(alpha=8,sigma=3)",
    val_every=1,
    verbose=False,
)


def test_augmented_ema_runs_are_reproducible_and_resume_exactly(
    train_1k: ImageSet, tiny_test: ImageSet, tmp_path: Path
) -> None:
    a = Trainer(**RECIPE)  # type: ignore[arg-type]
    state = a.fit(train_1k, tiny_test)
    assert state.ema is not None
    # The trained model ends with the averaged weights.
    for key, value in state.ema.module.state_dict().items():
        assert torch.equal(a.model.state_dict()[key], value)

    class StopMidEpoch(Callback):
        def on_batch_end(self, state: TrainState) -> None:
            if state.epoch == 2 and state.batch_in_epoch == 3:
                state.stop("test")

    folder = tmp_path / "ckpt"
    Trainer(callbacks=[Checkpoint(folder), StopMidEpoch()], **RECIPE).fit(train_1k, tiny_test)  # type: ignore[arg-type]
    resumed = Trainer(callbacks=[Checkpoint(folder)], **RECIPE)  # type: ignore[arg-type]
    resumed.fit(train_1k, tiny_test, resume=folder)
    for key, value in a.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_augmentation_changes_training(train_1k: ImageSet) -> None:
    plain = Trainer(**{**RECIPE, "augment": None, "ema_decay": 0.0, "epochs": 1})  # type: ignore[arg-type]
    augmented = Trainer(**{**RECIPE, "ema_decay": 0.0, "epochs": 1})  # type: ignore[arg-type]
    plain.fit(train_1k)
    augmented.fit(train_1k)
    w1 = plain.model.state_dict()["features.0.weight"]
    w2 = augmented.model.state_dict()["features.0.weight"]
    assert not torch.equal(w1, w2)


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
