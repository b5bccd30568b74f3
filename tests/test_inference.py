"""evaluate and predict_logits (lenet5.inference): the result's numbers, and every form
of data, or its refusal."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from helpers import quiet
from lenet5 import EvalResult, ImageSet, LeNet5
from lenet5.data import DataError
from lenet5.inference import predict_logits
from lenet5.training import evaluate


def test_evaluate_result(train_1k: ImageSet, test_1k: ImageSet) -> None:
    trainer = quiet(epochs=1)
    trainer.fit(train_1k)
    result = trainer.evaluate(test_1k)
    assert isinstance(result, EvalResult)
    assert result.total == 1000
    assert result.confusion.shape == (10, 10)
    assert result.confusion.dtype == torch.int64
    assert int(result.confusion.sum()) == 1000
    assert result.confusion.sum(dim=1).tolist() == test_1k.class_counts().tolist()
    assert result.correct == int(result.confusion.trace())
    assert result.accuracy == pytest.approx(100.0 * result.correct / 1000)
    assert 0 < result.loss < 10
    per_class = result.per_class_accuracy
    assert len(per_class) == 10
    assert all(0.0 <= a <= 100.0 for a in per_class)

    # The same numbers by hand.
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(test_1k.normalized())
    assert result.correct == int((logits.argmax(1) == test_1k.labels).sum())
    expected_loss = nn.functional.cross_entropy(logits, test_1k.labels).item()
    assert result.loss == pytest.approx(expected_loss, rel=1e-4)

    # Batch size and data form do not change the result.
    assert trainer.evaluate(test_1k, batch_size=7).correct == result.correct
    as_dataset = trainer.evaluate(test_1k.as_dataset())
    assert as_dataset.correct == result.correct
    assert torch.equal(as_dataset.confusion, result.confusion)
    assert evaluate(model, test_1k).correct == result.correct


def test_evaluate_keeps_training_mode(tiny_test: ImageSet) -> None:
    model = LeNet5().train()
    evaluate(model, tiny_test)
    assert model.training


def test_per_class_accuracy_nan_for_absent_class(tiny_test: ImageSet) -> None:
    only_sevens = tiny_test.subset((tiny_test.labels == 7).nonzero().flatten())
    result = evaluate(LeNet5(), only_sevens)
    assert result.total == len(only_sevens)
    assert not math.isnan(result.per_class_accuracy[7])
    assert math.isnan(result.per_class_accuracy[0])


def test_model_input_normalises_uint8_and_keeps_floats() -> None:
    from lenet5.data import normalize
    from lenet5.inference import model_input

    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    assert torch.equal(model_input(images, 0.5, 0.25), normalize(images, 0.5, 0.25))
    floats = torch.randn(3, 28, 28)
    assert model_input(floats, 0.5, 0.25).shape == (3, 1, 28, 28)
    batch = torch.randn(3, 1, 28, 28)
    assert model_input(batch, 0.5, 0.25) is batch


def test_unusable_inputs_to_predict_name_the_forms_that_work(tiny_test: ImageSet) -> None:
    model = LeNet5()
    with pytest.raises(DataError) as info:
        predict_logits(model, {"digits": tiny_test})
    assert str(info.value) == (
        "data: cannot use a dict; give an ImageSet, a Dataset (map-style or IterableDataset), "
        "a DataLoader, a list of items or an image tensor (N, H, W) / (N, 1, H, W); a dict of "
        "named sets is accepted as validation data only (val=)"
    )
    with pytest.raises(
        DataError, match=r"must be \(N, H, W\) or \(N, 1, H, W\), got \(2, 1, 1, 28, 28\)"
    ):
        predict_logits(model, torch.zeros(2, 1, 1, 28, 28))


def test_pil_images_in_a_list_are_evaluated_like_tensors(tiny_test: ImageSet) -> None:
    from PIL import Image

    model = LeNet5.from_pretrained("DEFAULT")
    as_pil = [
        (Image.fromarray(tiny_test.images[i].numpy()), int(tiny_test.labels[i])) for i in range(64)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uint8 of unknown origin: MNIST's normalisation
        from_pil = evaluate(model, as_pil)
    assert from_pil.correct == evaluate(model, tiny_test).correct
    assert from_pil.total == 64


def test_evaluating_images_without_labels_says_what_it_needs(tiny_test: ImageSet) -> None:
    model = LeNet5()
    images = [tiny_test.images[i].unsqueeze(0).float() for i in range(4)]
    with pytest.raises(DataError, match=r"need \(image, label\) items; got Tensor"):
        evaluate(model, images)
    bare = torch.zeros(8, 1, 28, 28)
    loader: DataLoader[torch.Tensor] = DataLoader(bare, batch_size=4)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="the DataLoader gives Tensor batches"):
        evaluate(model, loader)


def test_empty_data_cannot_be_evaluated_or_predicted() -> None:
    model = LeNet5()
    with pytest.raises(DataError, match=r"^cannot evaluate on empty data$"):
        evaluate(model, [])
    with pytest.raises(DataError, match=r"^cannot predict on empty data$"):
        predict_logits(model, torch.zeros(0, 28, 28))
