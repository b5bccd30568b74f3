"""The pixel augmentations (lenet5.augment._pixels): parsed, checked, seeded, per image."""

from __future__ import annotations

import pytest
import torch

from helpers import float_batch, seeded_generator
from lenet5 import ImageSet, Trainer
from lenet5.augment import (
    Augmentation,
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
from lenet5.training import ConfigError

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
    x = float_batch(tiny_train, 64)
    aug = parse_augment(f"{name}(p=1)")
    assert aug is not None
    a = aug(x, seeded_generator(1))
    assert torch.equal(a, aug(x, seeded_generator(1)))  # bitwise, from the generator's seed alone
    assert not torch.equal(a, aug(x, seeded_generator(2)))
    assert a.shape == x.shape
    assert a.dtype == x.dtype
    assert a.min() >= 0
    assert a.max() <= 1
    changed = (a - x).abs().amax(dim=(1, 2, 3)) > 1e-3
    # Nearly every image changes visibly; a blur drawn below about 0.3 pixels, or a small
    # rectangle erased from the background, changes (almost) nothing.
    assert changed.sum() >= (40 if name in ("blur", "erase") else 56), int(changed.sum())
    assert aug(x.double(), seeded_generator(1)).dtype == torch.float64
    none = parse_augment(f"{name}(p=0)")
    assert none is not None
    assert torch.equal(none(x, seeded_generator(1)), x)


@pytest.mark.parametrize("name", list(PIXEL))
def test_p_chooses_the_images_with_the_first_draw(name: str, tiny_train: ImageSet) -> None:
    x = float_batch(tiny_train, 64)
    aug = parse_augment(f"{name}(p=0.5)")
    assert aug is not None
    out = aug(x, seeded_generator(5))
    chosen = torch.rand(64, generator=seeded_generator(5)) < 0.5
    unchanged = (out == x).flatten(1).all(dim=1)
    assert torch.equal(unchanged[~chosen], torch.ones(int((~chosen).sum()), dtype=torch.bool))
    assert int((~unchanged[chosen]).sum()) >= int(chosen.sum()) - 4
    assert 20 <= int(chosen.sum()) <= 44


def test_each_image_draws_its_own_parameters(tiny_train: ImageSet) -> None:
    x = float_batch(tiny_train, 64)
    out = RandomBrightness(max=0.5, p=1)(x, seeded_generator(0))
    background = out[:, 0, 0, 0]  # the corner pixel is background: it becomes the delta
    assert len(set(background.tolist())) == 64
    assert 0 <= float(background.min()) < 0.1
    assert 0.4 < float(background.max()) <= 0.5
