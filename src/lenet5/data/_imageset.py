"""ImageSet: a whole split as two tensors, and the adapters from other forms of data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from ._facts import MNIST_MEAN, MNIST_STD, DataError, normalize

__all__ = ["ImageSet", "ImageSetDataset"]


@dataclass(frozen=True)
class ImageSet:
    """A whole split of an MNIST-format dataset as two tensors.

    Attributes:
        images: ``uint8`` tensor of shape ``(N, H, W)``.
        labels: ``int64`` tensor of shape ``(N,)``.
        classes: Class names, indexed by label.
        mean: Normalisation mean for these images, in [0, 1] units.
        std: Normalisation standard deviation, in [0, 1] units.
        name: Where the data came from, for messages (``"mnist/train"``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    name: str = "data"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 3:
            raise DataError(
                f"{self.name}: images must be a uint8 tensor of shape (N, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape "
                f"{tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            object.__setattr__(self, "labels", self.labels.long())

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        size = "x".join(str(d) for d in self.images.shape[1:])
        return (
            f"ImageSet(name={self.name!r}, {len(self):,} images of {size}, "
            f"{len(self.classes)} classes, device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.images.device

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> ImageSet:
        """Return a copy on ``device`` (the same object if it is already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        images = self.images
        labels = self.labels
        if device.type == "cuda" and images.device.type == "cpu":
            # Pinned host memory lets the one large copy run at full bus speed.
            images, labels = images.pin_memory(), labels.pin_memory()
            non_blocking = True
        return self._replace(
            images=images.to(device, non_blocking=non_blocking),
            labels=labels.to(device, non_blocking=non_blocking),
        )

    def subset(self, indices: torch.Tensor | Sequence[int] | slice) -> ImageSet:
        """Return the images and labels at ``indices`` (a slice, index list or tensor)."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self._replace(images=self.images[indices], labels=self.labels[indices])

    def split(self, n: int, *, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Split off ``n`` random examples, e.g. a validation set carved from training data.

        Args:
            n: Size of the second part, ``0 < n < len(self)``.
            seed: Seed of the permutation, so the split is reproducible.

        Returns:
            ``(rest, held_out)``.
        """
        if not 0 < n < len(self):
            raise DataError(f"{self.name}: cannot hold out {n} of {len(self)} examples")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        perm = perm.to(self.images.device)
        rest, held = perm[:-n].sort().values, perm[-n:].sort().values
        return (
            self.subset(rest)._replace(name=f"{self.name}[train]"),
            self.subset(held)._replace(name=f"{self.name}[val]"),
        )

    def normalized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All images as a normalised float tensor of shape ``(N, 1, H, W)``."""
        return normalize(self.images, self.mean, self.std, dtype=dtype)

    def class_counts(self) -> torch.Tensor:
        """Number of examples per class, as an ``int64`` tensor of length ``len(classes)``."""
        return torch.bincount(self.labels, minlength=len(self.classes))

    def as_dataset(self, transform: Callable[[Any], Any] | None = None) -> ImageSetDataset:
        """A map-style dataset over this set (see :class:`ImageSetDataset`)."""
        return ImageSetDataset(self, transform=transform)

    def _replace(self, **changes: Any) -> ImageSet:
        return dataclasses.replace(self, **changes)


class ImageSetDataset(Dataset[tuple[Any, int]]):
    """A map-style dataset over an :class:`ImageSet`, for use with torchvision transforms.

    Without a transform an item is ``(image, label)`` with ``image`` a ``uint8`` tensor of
    shape ``(1, H, W)``. With a transform, the image is given to it as a PIL image (as
    torchvision's ``MNIST`` does), so ``transforms.ToTensor()`` and friends work unchanged.

    Args:
        images: The data.
        transform: Optional callable applied to each PIL image.
    """

    def __init__(self, images: ImageSet, transform: Callable[[Any], Any] | None = None) -> None:
        self.data = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.data.images[index]
        label = int(self.data.labels[index])
        if self.transform is None:
            return image.unsqueeze(0), label
        from PIL import Image

        return self.transform(Image.fromarray(image.cpu().numpy(), mode="L")), label
