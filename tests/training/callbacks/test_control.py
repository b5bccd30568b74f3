"""EarlyStopping on real (tiny) MNIST runs. (Checkpoint, the other callback of
lenet5.training.callbacks._control, is tested in tests/training/test_checkpoint.py.)"""

from __future__ import annotations

import pytest

from helpers import quiet
from lenet5 import ImageSet
from lenet5.training import EarlyStopping


def test_early_stopping_stops(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    # No change can be an improvement of more than 1000 points: the second validation stops.
    stopper = EarlyStopping(patience=1, min_delta=1000.0)
    state = quiet(epochs=10, val_every=1, callbacks=[stopper]).fit(tiny_train, tiny_test)
    assert state.epoch == 2
    assert state.stop_reason is not None
    assert "val_accuracy did not improve for 1 validations" in state.stop_reason
    assert stopper.best_epoch == 1
    assert stopper.state_dict()["bad"] == 1


def test_early_stopping_patience_and_min_mode(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=2, min_delta=1000.0)
    state = quiet(epochs=10, val_every=1, callbacks=[stopper]).fit(tiny_train, tiny_test)
    assert state.epoch == 3
    assert stopper.best == state.history[0]["val_loss"]


def test_early_stopping_keeps_going_while_improving(
    train_1k: ImageSet, tiny_test: ImageSet
) -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=1)
    state = quiet(epochs=2, val_every=1, callbacks=[stopper]).fit(train_1k, tiny_test)
    assert not state.stop_requested
    assert state.epoch == 2


def test_early_stopping_arguments_and_missing_metric(tiny_train: ImageSet) -> None:
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    # val_split gives validation data; the monitored metric does not exist
    with pytest.raises(KeyError, match="val_f1"):
        quiet(epochs=1, val_split=16, callbacks=[EarlyStopping(monitor="val_f1")]).fit(tiny_train)
