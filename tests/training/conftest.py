"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from lenet5 import ImageSet


@pytest.fixture(scope="module")
def data(train_1k: ImageSet) -> ImageSet:
    """256 images: 8 steps of 32 per epoch."""
    return train_1k.subset(slice(0, 256))
