"""Adapters: other forms of labelled images as an :class:`ImageSet`, and batch collation."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import TensorDataset

from ._facts import DATASETS
from ._imageset import ImageSet

__all__ = ["as_image_set", "collate"]


def as_image_set(data: object) -> ImageSet | None:
    """Return ``data`` as an :class:`ImageSet` when that needs no per-sample work, else ``None``.

    Recognised: an ``ImageSet``; a :class:`~torch.utils.data.TensorDataset` of ``uint8``
    images ``(N, H, W)`` or ``(N, 1, H, W)`` and integer labels; torchvision's ``MNIST`` family
    without transforms.
    """
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        images, labels = data.tensors
        if images.dtype == torch.uint8 and not labels.is_floating_point():
            if images.dim() == 4 and images.shape[1] == 1:
                images = images[:, 0]
            if images.dim() == 3:
                return ImageSet(images, labels.long(), name="TensorDataset")
        return None
    try:
        from torchvision.datasets import MNIST, FashionMNIST
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    if (
        isinstance(data, MNIST)
        and data.transform is None
        and data.target_transform is None
        and data.data.dtype == torch.uint8
    ):
        info = DATASETS["fashion-mnist" if isinstance(data, FashionMNIST) else "mnist"]
        return ImageSet(
            data.data,
            data.targets.long(),
            classes=info.classes,
            mean=info.mean,
            std=info.std,
            name=f"torchvision {type(data).__name__}",
        )
    return None


def collate(batch: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(image, label)`` pairs where images may be PIL images or tensors."""
    images = []
    for image, _ in batch:
        if not isinstance(image, torch.Tensor):
            from torchvision.transforms.functional import pil_to_tensor

            image = pil_to_tensor(image)
        images.append(image)
    labels = torch.as_tensor([int(label) for _, label in batch], dtype=torch.long)
    return torch.stack(images), labels
