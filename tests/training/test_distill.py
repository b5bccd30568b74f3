"""Knowledge distillation (lenet5.Distillation): a teacher through loss_fn and soft targets."""

from __future__ import annotations

import pytest
import torch

from helpers import quiet, same, weights
from lenet5 import Callback, LeNet5
from lenet5.data import ImageSet
from lenet5.training.state import TrainState


def test_distillation_teaches_through_loss_fn_and_soft_targets(
    train_1k: ImageSet, test_1k: ImageSet
) -> None:
    from lenet5 import Distillation

    teacher = LeNet5.from_pretrained("DEFAULT")
    before = weights(teacher)
    distil = Distillation(teacher, temperature=4.0, alpha=0.9)
    seen: list[torch.Tensor] = []

    class Seen(Callback):
        order = 20  # after Distillation

        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.targets)

    student = quiet(epochs=2, loss_fn=distil.loss, callbacks=[distil, Seen()])
    student.fit(train_1k)
    assert same(weights(teacher), before)  # never trained
    assert all(t.shape == (32, 10) or t.shape == (8, 10) for t in seen)
    torch.testing.assert_close(seen[0].sum(dim=1), torch.ones(32))
    assert float(seen[0].max()) < 1.0  # softened at T = 4
    plain = quiet(epochs=2)
    plain.fit(train_1k)
    # A strong teacher helps a student trained on 1,000 images for two epochs.
    distilled = student.evaluate(test_1k).accuracy
    assert distilled > plain.evaluate(test_1k).accuracy
    with pytest.raises(ValueError, match="positive temperature"):
        Distillation(teacher, temperature=0.0)
    with pytest.raises(RuntimeError, match="same fit"):
        Distillation(teacher).loss(torch.zeros(2, 10), torch.zeros(2, 10))
