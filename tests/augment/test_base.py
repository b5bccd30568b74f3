"""Compose (lenet5.augment._base): warps resampled once, pixel changes in order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import float_batch, seeded_generator
from lenet5 import ImageSet
from lenet5.augment import Compose, ElasticDistortion, RandomAffine, RandomNoise


def test_compose_resamples_consecutive_warps_once_and_changes_pixels_in_order(
    tiny_train: ImageSet,
) -> None:
    x = float_batch(tiny_train)
    affine, elastic, noise = RandomAffine(), ElasticDistortion(alpha=8, sigma=3), RandomNoise(p=1)
    # The warps alone: one grid, warped by each in turn, and one resampling, as always.
    g = seeded_generator(7)
    identity = torch.eye(2, 3).expand(16, 2, 3)
    grid = F.affine_grid(identity, list(x.shape), align_corners=False)
    grid = elastic.warp(affine.warp(grid, g), g)
    once = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.equal(Compose([affine, elastic])(x, seeded_generator(7)), once)
    # Warps, then the noise, all from the one generator.
    g = seeded_generator(4)
    expected = noise.apply(Compose([affine, elastic])(x, g), g)
    assert torch.equal(Compose([affine, elastic, noise])(x, seeded_generator(4)), expected)
    # A pixel augmentation between two warps: two resamplings, in order.
    g = seeded_generator(4)
    expected = Compose([elastic])(noise.apply(Compose([affine])(x, g), g), g)
    assert torch.equal(Compose([affine, noise, elastic])(x, seeded_generator(4)), expected)
    assert Compose([Compose([affine, noise]), elastic]).augmentations == [affine, noise, elastic]
    with pytest.raises(TypeError, match="RandomNoise changes pixel values"):
        Compose([affine, noise]).warp(grid, seeded_generator(0))
    assert torch.equal(Compose([])(x, seeded_generator(0)), x)
