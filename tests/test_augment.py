"""Batched on-device augmentation and weight averaging in the Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import StopAtBatch, quiet, same, weights
from lenet5 import Callback, ImageSet, Trainer, TrainState
from lenet5.augment import (
    Augmentation,
    Compose,
    ElasticDistortion,
    RandomAffine,
    RandomBlur,
    RandomBrightness,
    RandomContrast,
    RandomErasing,
    RandomFog,
    RandomImpulseNoise,
    RandomLines,
    RandomNoise,
    RandomThickness,
    parse_augment,
)
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


# ------------------------------------------------------------ the pixel augmentations

PIXEL: dict[str, Augmentation] = {
    "noise": RandomNoise(),
    "impulse": RandomImpulseNoise(),
    "blur": RandomBlur(),
    "contrast": RandomContrast(),
    "brightness": RandomBrightness(),
    "fog": RandomFog(),
    "thickness": RandomThickness(),
    "lines": RandomLines(),
    "erase": RandomErasing(),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _parts(spec: str) -> list[Augmentation]:
    aug = parse_augment(spec)
    assert aug is not None
    return aug.augmentations


def test_the_pixel_augmentations_parse_with_defaults_and_arguments() -> None:
    for name, default in PIXEL.items():
        assert _parts(name) == [default]
    assert _parts("noise(std=0.2, p=1)") == [RandomNoise(std=0.2, p=1)]
    assert _parts("blur(sigma=1.0)") == [RandomBlur(sigma=1.0)]
    assert _parts("contrast(low=0.3)") == [RandomContrast(low=0.3)]
    assert _parts("brightness(max=0.5),fog(max=0.5)") == [RandomBrightness(), RandomFog()]
    assert _parts("lines(p=0.3,count=3,width=2)") == [RandomLines(count=3, width=2, p=0.3)]
    assert _parts("erase(p=0.5,area=0.3)") == [RandomErasing(area=0.3, p=0.5)]
    (lines,) = _parts("lines(count=3)")
    assert isinstance(lines, RandomLines)
    assert type(lines.count) is int
    assert [type(a) for a in _parts("affine,elastic,noise,contrast,fog")] == [
        RandomAffine, ElasticDistortion, RandomNoise, RandomContrast, RandomFog,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="use affine, elastic, noise, impulse, blur"):
        parse_augment("snow")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("noise(std=1.5)", r"noise: std must be in \[0, 1\], got 1.5"),
        ("noise(p=-0.1)", r"noise: p must be in \[0, 1\], got -0.1"),
        ("impulse(amount=2)", r"impulse: amount must be in \[0, 1\], got 2.0"),
        ("blur(sigma=6)", r"blur: sigma must be in \[0, 5\], got 6.0"),
        ("contrast(low=1.2)", r"contrast: low must be in \[0, 1\], got 1.2"),
        ("brightness(max=nan)", r"brightness: max must be in \[0, 1\], got nan"),
        ("fog(max=-1)", r"fog: max must be in \[0, 1\], got -1.0"),
        ("fog(p=2)", r"fog: p must be in \[0, 1\], got 2.0"),
        ("thickness(max=4)", r"thickness: max must be in \[0, 3\], got 4.0"),
        ("lines(count=0)", r"lines: count must be in \[1, 10\], got 0.0"),
        ("lines(count=1.5)", r"lines: count must be a whole number, got 1.5"),
        ("lines(width=0)", r"lines: width must be in \(0, 5\], got 0.0"),
        ("erase(area=0.01)", r"erase: area must be in \[0.02, 1\], got 0.01"),
        ("fog(maxx=1)", r"fog has no argument 'maxx'; arguments: max, p"),
        ("noise(std=x)", r"noise\(std=x\): 'x' is not a number"),
    ],
)
def test_pixel_augmentation_arguments_are_checked(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_augment(spec)
    with pytest.raises(ConfigError, match="augment: " + message):
        Trainer(augment=spec)


@pytest.mark.parametrize("name", list(PIXEL))
def test_pixel_augmentations_are_seeded_and_keep_the_form(name: str, tiny_train: ImageSet) -> None:
    x = _batch(tiny_train, 64)
    aug = parse_augment(f"{name}(p=1)")
    assert aug is not None
    a = aug(x, _gen(1))
    assert torch.equal(a, aug(x, _gen(1)))  # bitwise, from the generator's seed alone
    assert not torch.equal(a, aug(x, _gen(2)))
    assert a.shape == x.shape
    assert a.dtype == x.dtype
    assert a.min() >= 0
    assert a.max() <= 1
    changed = (a - x).abs().amax(dim=(1, 2, 3)) > 1e-3
    # Nearly every image changes visibly; a blur drawn below about 0.3 pixels, or a small
    # rectangle erased from the background, changes (almost) nothing.
    assert changed.sum() >= (40 if name in ("blur", "erase") else 56), int(changed.sum())
    assert aug(x.double(), _gen(1)).dtype == torch.float64
    none = parse_augment(f"{name}(p=0)")
    assert none is not None
    assert torch.equal(none(x, _gen(1)), x)


@pytest.mark.parametrize("name", list(PIXEL))
def test_p_chooses_the_images_with_the_first_draw(name: str, tiny_train: ImageSet) -> None:
    x = _batch(tiny_train, 64)
    aug = parse_augment(f"{name}(p=0.5)")
    assert aug is not None
    out = aug(x, _gen(5))
    chosen = torch.rand(64, generator=_gen(5)) < 0.5
    unchanged = (out == x).flatten(1).all(dim=1)
    assert torch.equal(unchanged[~chosen], torch.ones(int((~chosen).sum()), dtype=torch.bool))
    assert int((~unchanged[chosen]).sum()) >= int(chosen.sum()) - 4
    assert 20 <= int(chosen.sum()) <= 44


def test_each_image_draws_its_own_parameters(tiny_train: ImageSet) -> None:
    x = _batch(tiny_train, 64)
    out = RandomBrightness(max=0.5, p=1)(x, _gen(0))
    background = out[:, 0, 0, 0]  # the corner pixel is background: it becomes the delta
    assert len(set(background.tolist())) == 64
    assert 0 <= float(background.min()) < 0.1
    assert 0.4 < float(background.max()) <= 0.5


def test_compose_resamples_consecutive_warps_once_and_changes_pixels_in_order(
    tiny_train: ImageSet,
) -> None:
    x = _batch(tiny_train)
    affine, elastic, noise = RandomAffine(), ElasticDistortion(alpha=8, sigma=3), RandomNoise(p=1)
    # The warps alone: one grid, warped by each in turn, and one resampling, as always.
    g = _gen(7)
    identity = torch.eye(2, 3).expand(16, 2, 3)
    grid = F.affine_grid(identity, list(x.shape), align_corners=False)
    grid = elastic.warp(affine.warp(grid, g), g)
    once = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.equal(Compose([affine, elastic])(x, _gen(7)), once)
    # Warps, then the noise, all from the one generator.
    g = _gen(4)
    expected = noise.apply(Compose([affine, elastic])(x, g), g)
    assert torch.equal(Compose([affine, elastic, noise])(x, _gen(4)), expected)
    # A pixel augmentation between two warps: two resamplings, in order.
    g = _gen(4)
    expected = Compose([elastic])(noise.apply(Compose([affine])(x, g), g), g)
    assert torch.equal(Compose([affine, noise, elastic])(x, _gen(4)), expected)
    assert Compose([Compose([affine, noise]), elastic]).augmentations == [affine, noise, elastic]
    with pytest.raises(TypeError, match="RandomNoise changes pixel values"):
        Compose([affine, noise]).warp(grid, _gen(0))
    assert torch.equal(Compose([])(x, _gen(0)), x)


def test_exact_resume_with_pixel_augmentation(tmp_path: Path, tiny_train: ImageSet) -> None:
    options = {"epochs": 2, "batch_size": 16, "augment": "affine,noise,fog", "ema_decay": 0.9}
    whole = quiet(**options)
    whole.fit(tiny_train)
    stopped = quiet(**options, callbacks=[Checkpoint(tmp_path), StopAtBatch(2, 1)])
    state = stopped.fit(tiny_train)
    assert (state.epoch, state.batch_in_epoch) == (2, 1)
    resumed = quiet(**options, callbacks=[Checkpoint(tmp_path)])
    resumed.fit(tiny_train, resume=tmp_path)
    assert same(weights(resumed.model), weights(whole.model))
    # The pixel augmentations are part of what was trained on.
    warps_only = quiet(**{**options, "augment": "affine"})
    warps_only.fit(tiny_train)
    assert not same(weights(warps_only.model), weights(whole.model))
