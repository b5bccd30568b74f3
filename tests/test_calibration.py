"""Temperature scaling and the expected calibration error, on a real model's logits."""

from __future__ import annotations

import pytest
import torch

from lenet5 import ImageSet, LeNet5
from lenet5.calibration import expected_calibration_error, fit_temperature
from lenet5.inference import predict_logits


def test_ece_of_known_cases() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    sure_and_right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure_and_right, labels) == 0.0
    sure_and_wrong = sure_and_right.flip(1)
    assert expected_calibration_error(sure_and_wrong, labels) == pytest.approx(100.0)
    # 80% confident, right 3 times of 4 in one bin: |0.75 - 0.8| = 5 points.
    probs = torch.tensor([[0.8, 0.2]] * 4)
    assert expected_calibration_error(probs, torch.tensor([0, 0, 0, 1])) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="bins must be at least 1"):
        expected_calibration_error(probs, labels, bins=0)
    with pytest.raises(ValueError, match="expected logits"):
        expected_calibration_error(probs, labels[:3])


def test_temperature_undoes_a_known_overconfidence() -> None:
    """Logits drawn from a calibrated model, then multiplied by 3: T comes back near 3."""
    generator = torch.Generator().manual_seed(0)
    true = torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial(true.softmax(1), 1, generator=generator).squeeze(1)
    temperature = fit_temperature(true * 3.0, labels)
    assert temperature == pytest.approx(3.0, rel=0.05)
    before = expected_calibration_error((true * 3.0).softmax(1), labels)
    after = expected_calibration_error((true * 3.0 / temperature).softmax(1), labels)
    assert after < before / 3
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_temperature(torch.full((2, 3), float("nan")), torch.tensor([0, 1]))


def test_temperature_of_a_trained_model_keeps_its_predictions(
    train_1k: ImageSet, test_1k: ImageSet
) -> None:
    model = LeNet5.from_pretrained("DEFAULT")
    logits = predict_logits(model, test_1k)
    temperature = fit_temperature(logits, test_1k.labels)
    assert 0.05 <= temperature <= 20
    assert torch.equal((logits / temperature).argmax(1), logits.argmax(1))
    nll = torch.nn.functional.cross_entropy
    assert nll(logits / temperature, test_1k.labels) <= nll(logits, test_1k.labels) + 1e-6
