"""The dataset facts and normalisation (lenet5.data._facts)."""

from __future__ import annotations

import pytest
import torch

from lenet5 import normalize
from lenet5.data import DataError


def test_normalize_values_and_checks() -> None:
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    out = normalize(images, mean=0.5, std=0.5)
    assert out.shape == (1, 1, 1, 2)
    torch.testing.assert_close(out.flatten(), torch.tensor([-1.0, 1.0]))
    assert normalize(images.unsqueeze(1)).shape == (1, 1, 1, 2)
    assert normalize(images, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(DataError, match="uint8"):
        normalize(images.float())
