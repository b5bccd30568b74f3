"""Data in every usual form (lenet5.data._forms), as the Trainer takes it: ImageSets,
datasets, iterables, loaders, lists and tensors; what the model sees of each, and each
form that cannot be used, named."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import Compose, Normalize, ToTensor

from helpers import Stream, examples, quiet
from lenet5 import Callback, ImageSet, TrainState
from lenet5.data import MNIST_MEAN, MNIST_STD, DataError, NormalizationWarning
from lenet5.training import ConfigError

# ----------------------------------------------------------------------- every form trains


def _normalizing() -> Compose:
    return Compose([ToTensor(), Normalize((MNIST_MEAN,), (MNIST_STD,))])


@pytest.mark.parametrize("kind", ["imageset", "tensordataset", "torchvision-transform"])
def test_fit_accepts_data_and_learns(kind: str, train_2k: ImageSet, test_1k: ImageSet) -> None:
    if kind == "imageset":
        train: object = train_2k
        test: object = test_1k
    elif kind == "tensordataset":
        train = TensorDataset(train_2k.images, train_2k.labels)
        test = TensorDataset(test_1k.images.unsqueeze(1), test_1k.labels)
    else:
        train = train_2k.as_dataset(transform=_normalizing())
        test = test_1k.as_dataset(transform=_normalizing())
    trainer = quiet(epochs=2, val_every=1)
    state = trainer.fit(train, test)  # type: ignore[arg-type]
    expected = torch.utils.data.DataLoader if kind == "torchvision-transform" else ImageSet
    assert isinstance(state.train_data, expected)
    assert state.steps_per_epoch == math.ceil(2000 / 32)
    result = trainer.evaluate(test)  # type: ignore[arg-type]
    assert result.total == 1000
    assert result.accuracy > 80.0
    assert state.history[-1]["val_accuracy"] == pytest.approx(result.accuracy)
    assert state.history[1]["loss"] < state.history[0]["loss"]


def test_fit_with_plain_uint8_dataset(tiny_train: ImageSet) -> None:
    state = quiet(epochs=1).fit(tiny_train.as_dataset())
    assert isinstance(state.train_data, torch.utils.data.DataLoader)
    assert state.global_step == 2
    assert math.isfinite(state.history[0]["loss"])


def test_data_in_every_form(tiny_train: ImageSet, tiny_test: ImageSet) -> None:
    loader = DataLoader(tiny_train.as_dataset(), batch_size=16, shuffle=True)
    as_list = [(tiny_train.images[i], int(tiny_train.labels[i])) for i in range(64)]
    forms: dict[str, Any] = {
        "dataloader": loader,
        "iterable": Stream(tiny_train),
        "list": as_list,
        "dataset": tiny_train.as_dataset(),
    }
    for name, data in forms.items():
        trainer = quiet(epochs=2)
        with warnings.catch_warnings():  # a stream or a list of uint8 images: of unknown origin
            warnings.simplefilter("ignore", NormalizationWarning)
            state = trainer.fit(data, Stream(tiny_test))
        assert state.global_step == (8 if name == "dataloader" else 4), name
        assert len(state.history) == 2, name
        result = trainer.evaluate(DataLoader(tiny_test.as_dataset(), batch_size=10))
        assert result.total == 64, name
        assert state.history[-1]["val_accuracy"] == pytest.approx(result.accuracy), name
    assert state.train_data is not loader  # the last form was a dataset: batched by us
    given = quiet(epochs=1)
    assert given.fit(loader).train_data is loader  # a DataLoader is used as given


# --------------------------------------------------------------------------- normalisation


def test_uint8_of_unknown_origin_warns_and_mean_std_set_it(tiny_train: ImageSet) -> None:
    data = TensorDataset(tiny_train.images, tiny_train.labels)
    with pytest.warns(NormalizationWarning, match=r"mean=\.\.\., std=\.\.\."):
        quiet(epochs=1).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalizationWarning)
        state = quiet(epochs=1, mean=0.5, std=0.25).fit(data)
        assert state.norm == (0.5, 0.25)
        quiet(epochs=1).fit(tiny_train)  # an ImageSet carries its own
        quiet(epochs=1).fit(DataLoader(tiny_train.as_dataset(), batch_size=32))  # so its loader


def test_mean_and_std_change_what_the_model_sees(tiny_train: ImageSet) -> None:
    data = TensorDataset(tiny_train.images, tiny_train.labels)
    seen: list[torch.Tensor] = []

    class Inputs(Callback):
        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.inputs)

    quiet(epochs=1, mean=0.0, std=1.0, batch_size=64, callbacks=[Inputs()]).fit(data)
    assert float(seen[0].min()) == 0.0
    assert float(seen[0].max()) == 1.0


def test_float_data_is_used_as_given(tiny_train: ImageSet) -> None:
    images = tiny_train.images.float().div(255).unsqueeze(1) * 3.0 - 7.0
    seen: list[torch.Tensor] = []

    class Inputs(Callback):
        def on_batch_start(self, state: TrainState) -> None:
            seen.append(state.inputs)

    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalizationWarning)
        trainer = quiet(epochs=1, batch_size=64, callbacks=[Inputs()])
        trainer.fit(TensorDataset(images, tiny_train.labels))
    assert set(seen[0].flatten().tolist()) <= set(images.flatten().tolist())


# --------------------------------------------------------------------- what cannot be used


def test_unusable_data_is_named() -> None:
    with pytest.raises(DataError, match=r"cannot use a Tensor.*TensorDataset"):
        quiet(epochs=1).fit(torch.zeros(4, 28, 28))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot use a str"):
        quiet(epochs=1).fit("mnist")  # type: ignore[arg-type]


def test_a_schedule_needs_a_length(tiny_train: ImageSet) -> None:
    with pytest.raises(ConfigError, match="has no length"):
        quiet(epochs=1, scheduler="onecycle").fit(Stream(tiny_train))


def test_validation_set_names_must_make_metric_names(tiny_train: ImageSet) -> None:
    with pytest.raises(DataError, match="metric names"):
        quiet(epochs=1).fit(tiny_train, {"has space": tiny_train})


def test_empty_training_data_is_rejected(train_1k: ImageSet) -> None:
    with pytest.raises(DataError, match="empty"):
        quiet(epochs=1).fit(train_1k.subset(slice(0, 0)))


def test_validation_data_that_cannot_be(tiny_train: ImageSet) -> None:
    with pytest.raises(DataError, match=r"^val is an empty dict; give at least one"):
        quiet(epochs=1).fit(tiny_train, val={})
    with pytest.raises(DataError, match=r"^val_split needs ImageSet training data"):
        quiet(epochs=1, val_split=10).fit(examples(tiny_train, 64))


def test_an_empty_list_of_training_examples_is_refused() -> None:
    with pytest.raises(DataError, match=r"^the training data is empty$"):
        quiet(epochs=1).fit([])


def test_a_dataloader_of_bare_images_cannot_train(tiny_train: ImageSet) -> None:
    images = tiny_train.images.unsqueeze(1).float()
    loader: DataLoader[torch.Tensor] = DataLoader(images, batch_size=32)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"the training data gives Tensor batches; training needs"):
        quiet(epochs=1).fit(loader)
