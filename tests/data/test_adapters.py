"""Other forms of labelled images taken as an ImageSet (lenet5.data._adapters)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from lenet5 import ImageSet, LeNet5
from lenet5.data import as_image_set, known_norm
from lenet5.inference import evaluate


def test_a_tensor_dataset_of_colour_images_is_not_taken_for_an_image_set() -> None:
    images = torch.zeros(4, 3, 28, 28, dtype=torch.uint8)
    assert as_image_set(TensorDataset(images, torch.zeros(4, dtype=torch.long))) is None


def test_a_torchvision_mnist_without_transforms_is_evaluated_as_an_image_set(
    tmp_path: Path, mnist_test: ImageSet, idx_writer: Callable[..., Path]
) -> None:
    from torchvision.datasets import MNIST

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", mnist_test), ("t10k", mnist_test)):  # small train split
        idx_writer(raw / f"{prefix}-images-idx3-ubyte", split.images[:200], gz=False)
        labels = split.labels[:200].to(torch.uint8)
        idx_writer(raw / f"{prefix}-labels-idx1-ubyte", labels, gz=False)
    dataset = MNIST(str(tmp_path), train=False)
    found = as_image_set(dataset)
    assert found is not None
    assert found.name == "torchvision MNIST"
    assert torch.equal(found.images, mnist_test.images[:200])
    assert (found.mean, found.std) == (mnist_test.mean, mnist_test.std)
    assert known_norm(DataLoader(dataset)) == (mnist_test.mean, mnist_test.std)
    model = LeNet5.from_pretrained("DEFAULT")
    assert (
        evaluate(model, dataset).correct
        == evaluate(model, mnist_test.subset(slice(0, 200))).correct
    )


def test_known_norm_ends_on_a_wrapper_that_contains_itself() -> None:
    class Loop:
        def __init__(self) -> None:
            self.dataset = self

    assert known_norm(Loop()) is None  # at once, not an endless walk
