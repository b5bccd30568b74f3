"""Data in every usual form, as batches: datasets, iterables, loaders and image tensors.

An :class:`~lenet5.data.ImageSet` is sliced on the device by its users; everything else
comes here. A :class:`~torch.utils.data.DataLoader` is used as given (its own batch size,
order and collation); an :class:`~torch.utils.data.IterableDataset`, a map-style dataset
or a list of items is batched in order with :func:`collate`. An item is ``(image, label)``
or, where no label is needed, an image alone. Labels are class indices or, for soft
targets, probability vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .._hints import warn
from ._facts import MNIST_MEAN, MNIST_STD, DataError
from ._imageset import ImageSet

__all__ = [
    "NormalizationWarning",
    "check_data",
    "collate",
    "collate_images",
    "data_length",
    "image_batches",
    "is_given_loader",
    "labelled_batches",
    "warn_default_norm",
]


class NormalizationWarning(UserWarning):
    """``uint8`` images of unknown origin are normalised with MNIST's statistics."""


def warn_default_norm() -> tuple[float, float]:
    """Warn that MNIST's mean and std stand in for the data's own (pointing at the user's
    line); return them."""
    warn(
        "uint8 images of unknown origin are normalised with MNIST's mean and std "
        f"({MNIST_MEAN:.4f}, {MNIST_STD:.4f}); if they are not MNIST, pass their own: "
        "Trainer(mean=..., std=...) (lenet5 train --mean X --std X), evaluate(..., "
        "norm=(mean, std)), or an ImageSet that carries them",
        NormalizationWarning,
    )
    return MNIST_MEAN, MNIST_STD


def check_data(data: object, what: str = "data", *, tensors: bool = False) -> None:
    """Refuse what no batching here understands, naming the forms that work.

    Raises:
        DataError: For anything but an ``ImageSet``, a ``DataLoader``, a dataset (map-style
            or iterable), a list or tuple of items, or (with ``tensors``) an image tensor.
    """
    if isinstance(data, (ImageSet, DataLoader, Dataset)):
        return
    if tensors and isinstance(data, torch.Tensor):
        return
    if isinstance(data, (list, tuple)) and not isinstance(data, str):
        return
    forms = "an ImageSet, a Dataset (map-style or IterableDataset), a DataLoader, a list of items"
    if tensors:
        forms += " or an image tensor (N, H, W) / (N, 1, H, W)"
    hint = ""
    if isinstance(data, torch.Tensor):
        hint = "; wrap images and labels in torch.utils.data.TensorDataset(images, labels)"
    elif isinstance(data, dict):
        hint = "; a dict of named sets is accepted as validation data only (val=)"
    raise DataError(f"{what}: cannot use a {type(data).__name__}; give {forms}{hint}")


def data_length(data: object) -> int | None:
    """The number of batches of a loader, or of items of anything else; ``None`` if unknown."""
    try:
        return len(cast("Sequence[Any]", data))
    except TypeError:
        return None


def _as_tensor(image: Any) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    from torchvision.transforms.functional import pil_to_tensor

    return cast("torch.Tensor", pil_to_tensor(image))


def _label(label: Any) -> torch.Tensor:
    if isinstance(label, torch.Tensor):
        return label if label.dim() else label.reshape(())
    return torch.as_tensor(label)


def collate(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(image, label)`` pairs; images may be PIL images or tensors, labels class
    indices (``int64``) or probability vectors (soft targets, ``float32``)."""
    if not batch or not isinstance(batch[0], (tuple, list)) or len(batch[0]) < 2:
        raise DataError(
            "training and evaluation need (image, label) items; got "
            f"{type(batch[0]).__name__ if batch else 'an empty batch'} (Trainer.predict takes "
            "images alone)"
        )
    images = torch.stack([_as_tensor(item[0]) for item in batch])
    labels = [_label(item[1]) for item in batch]
    if labels[0].dim() == 0 and not labels[0].is_floating_point():
        return images, torch.stack(labels).long()
    return images, torch.stack(labels).float()


def collate_images(batch: list[Any]) -> torch.Tensor:
    """Collate images, or the images of ``(image, label)`` pairs (labels are dropped)."""
    return torch.stack(
        [_as_tensor(item[0] if isinstance(item, (tuple, list)) else item) for item in batch]
    )


def _loader(data: Any, batch_size: int, collate_fn: Any) -> DataLoader[Any]:
    if isinstance(data, DataLoader):
        return data
    return DataLoader(
        cast("Dataset[Any]", data), batch_size=batch_size, shuffle=False, collate_fn=collate_fn
    )


def labelled_batches(data: object, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` batches of a loader, dataset or list, in order."""
    check_data(data)
    for batch in _loader(data, batch_size, collate):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(
                f"the DataLoader gives {type(batch).__name__} batches; training and "
                "evaluation need (images, labels)"
            )
        yield batch[0], batch[1]


def image_batches(data: object, batch_size: int) -> Iterator[torch.Tensor]:
    """The image batches of an image tensor, a loader, a dataset or a list (labels, where
    there are any, are dropped), in order."""
    check_data(data, tensors=True)
    if isinstance(data, torch.Tensor):
        if data.dim() not in (3, 4):
            raise DataError(
                f"an image tensor must be (N, H, W) or (N, 1, H, W), got {tuple(data.shape)}"
            )
        yield from (data[i : i + batch_size] for i in range(0, data.shape[0], batch_size))
        return
    batches: Iterable[Any] = _loader(data, batch_size, collate_images)
    for batch in batches:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def is_given_loader(data: object) -> bool:
    """Whether ``data`` is iterated as it is (a DataLoader or an IterableDataset)."""
    return isinstance(data, (DataLoader, IterableDataset))
