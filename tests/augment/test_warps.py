"""The geometric augmentations (lenet5.augment._warps): random affine warps and elastic
distortions."""

from __future__ import annotations

import torch

from helpers import float_batch
from lenet5 import ImageSet
from lenet5.augment import Compose, ElasticDistortion, RandomAffine


def test_same_generator_same_result_and_real_change(tiny_train: ImageSet) -> None:
    x = float_batch(tiny_train)
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
    x = float_batch(tiny_train)
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


def test_elastic_works_in_float64() -> None:
    from lenet5.augment import ElasticDistortion

    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    assert (
        ElasticDistortion(alpha=8, sigma=3)(x, torch.Generator().manual_seed(0)).dtype
        == torch.float64
    )
