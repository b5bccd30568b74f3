"""Adapters: other forms of labelled images as an :class:`ImageSet`, and batch collation."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ._facts import DATASETS
from ._forms import warn_default_norm
from ._imageset import ImageSet, ImageSetDataset

__all__ = ["as_image_set", "known_norm"]


def as_image_set(data: object, norm: tuple[float, float] | None = None) -> ImageSet | None:
    """Return ``data`` as an :class:`ImageSet` when that needs no per-sample work, else ``None``.

    Recognised: an ``ImageSet``; a :class:`~torch.utils.data.TensorDataset` of ``uint8``
    images ``(N, H, W)`` or ``(N, 1, H, W)`` and integer labels; torchvision's ``MNIST`` family
    without transforms.

    Args:
        data: The data.
        norm: ``(mean, std)`` of a ``TensorDataset``'s images, which carry none of their
            own; ``None`` takes MNIST's, with a :class:`NormalizationWarning`.
    """
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        images, labels = data.tensors
        if images.dtype == torch.uint8 and not labels.is_floating_point():
            if images.dim() == 4 and images.shape[1] == 1:
                images = images[:, 0]
            if images.dim() == 3:
                mean, std = norm if norm is not None else warn_default_norm()
                return ImageSet(images, labels.long(), mean=mean, std=std, name="TensorDataset")
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


def known_norm(data: object) -> tuple[float, float] | None:
    """The ``(mean, std)`` that ``data`` carries: an ImageSet's, or that of the ImageSet or
    torchvision MNIST-family dataset inside a DataLoader, a ``Subset`` or an
    :class:`~lenet5.data.ImageSetDataset`; ``None`` for data of unknown origin."""
    for _ in range(8):  # wrappers inside wrappers, but never a cycle
        if isinstance(data, ImageSetDataset):
            data = data.data
        if isinstance(data, ImageSet):
            return data.mean, data.std
        inner = getattr(data, "dataset", None)
        if inner is None:
            break
        data = inner
    if isinstance(data, torch.utils.data.TensorDataset):
        return None
    found = as_image_set(data)
    return (found.mean, found.std) if found is not None else None
