"""ImageSet: a whole split as two tensors; subsets, splits, normalisation, datasets."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import ToTensor

from lenet5 import ImageSet
from lenet5.data import DataError


def test_normalize_training_set(mnist_train: ImageSet) -> None:
    x = mnist_train.normalized()
    assert x.shape == (60_000, 1, 28, 28)
    assert x.dtype == torch.float32
    assert x.double().mean().item() == pytest.approx(0.0, abs=1e-3)
    assert x.double().std().item() == pytest.approx(1.0, abs=1e-3)
    # The images themselves are untouched.
    assert mnist_train.images.dtype == torch.uint8


def numbered(data: ImageSet, n: int) -> ImageSet:
    """The first ``n`` images, labelled with their index so splits can be traced."""
    return ImageSet(data.images[:n], torch.arange(n), classes=tuple(map(str, range(n))))


def test_split_is_reproducible_and_disjoint(mnist_train: ImageSet) -> None:
    data = numbered(mnist_train, 2000)
    rest, held = data.split(500, seed=3)
    assert (len(rest), len(held)) == (1500, 500)
    rest_ids, held_ids = set(rest.labels.tolist()), set(held.labels.tolist())
    assert not rest_ids & held_ids
    assert rest_ids | held_ids == set(range(2000))
    # images follow their labels
    assert torch.equal(held.images, data.images[held.labels])
    again_rest, again_held = data.split(500, seed=3)
    assert torch.equal(again_held.labels, held.labels)
    assert torch.equal(again_rest.labels, rest.labels)
    _, other = data.split(500, seed=4)
    assert not torch.equal(other.labels, held.labels)
    assert held.name.endswith("[val]")
    assert rest.name.endswith("[train]")


@pytest.mark.parametrize("n", [0, -1, 2000, 5000])
def test_split_rejects_bad_sizes(mnist_train: ImageSet, n: int) -> None:
    with pytest.raises(DataError, match="cannot hold out"):
        numbered(mnist_train, 2000).split(n)


def test_subset_keeps_metadata(mnist_train: ImageSet) -> None:
    sub = mnist_train.subset([3, 1, 2])
    assert sub.labels.tolist() == [mnist_train.labels[i].item() for i in (3, 1, 2)]
    assert (sub.mean, sub.std, sub.classes) == (
        mnist_train.mean,
        mnist_train.std,
        mnist_train.classes,
    )
    assert len(mnist_train.subset(slice(10, 20))) == 10


def test_imageset_validation() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageSet(torch.zeros(2, 28, 28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(DataError, match="2 images but labels of shape"):
        ImageSet(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    converted = ImageSet(
        torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.uint8)
    )
    assert converted.labels.dtype == torch.int64


def test_as_dataset_without_transform(mnist_test: ImageSet) -> None:
    ds = mnist_test.as_dataset()
    assert len(ds) == 10_000
    image, label = ds[7]
    assert image.shape == (1, 28, 28)
    assert image.dtype == torch.uint8
    assert torch.equal(image[0], mnist_test.images[7])
    assert label == int(mnist_test.labels[7])
    assert isinstance(label, int)


def test_as_dataset_with_torchvision_transform(mnist_test: ImageSet) -> None:
    ds = mnist_test.as_dataset(transform=ToTensor())
    image, label = ds[7]
    assert image.shape == (1, 28, 28)
    assert image.dtype == torch.float32
    torch.testing.assert_close(image[0], mnist_test.images[7].float() / 255)
    assert label == int(mnist_test.labels[7])


def test_image_set_repr_and_a_copy_on_another_device(tiny_train: ImageSet) -> None:
    assert repr(tiny_train) == (
        "ImageSet(name='mnist/train', 64 images of 28x28, 10 classes, device=cpu)"
    )
    moved = tiny_train.to("meta")  # a device with no data: the copy is made, not the values
    assert moved is not tiny_train
    assert moved.device == torch.device("meta")
    assert (moved.mean, moved.std, moved.classes) == (
        tiny_train.mean,
        tiny_train.std,
        tiny_train.classes,
    )
    assert tiny_train.device == torch.device("cpu")
    assert tiny_train.to("cpu") is tiny_train
