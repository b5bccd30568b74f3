"""The kinds of augmentation (warps of the sampling grid, changes of pixel values) and
:class:`Compose`, which chains them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def check_range(
    name: str,
    arg: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float, or a ValueError naming the argument and its range.

    Refuses anything but a finite ``int`` or ``float`` (a ``bool``, a string, ``NaN`` and
    the infinities included) in ``[low, high]`` (``(low, ...`` with ``low_open``,
    ``..., high)`` with ``high_open``).
    """
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    inside = number is not None and math.isfinite(number)
    if inside:
        assert number is not None
        above = number > low if low_open else number >= low
        below = number < high if high_open else number <= high
        inside = above and below
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        kind = "" if number is not None else "a number "
        raise ValueError(f"{name}: {arg} must be {kind}in {interval}, got {value!r}")
    return float(number)  # type: ignore[arg-type]


class Augmentation:
    """Base class: a random warp of the sampling grid of a batch."""

    def warp(self, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a new sampling grid ``(N, H, W, 2)`` in [-1, 1] coordinates."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch ``(N, C, H, W)``; see :class:`Compose`."""
        return Compose([self])(images, generator)


class PixelAugmentation(Augmentation):
    """Base class: a random change of pixel values, applied to each image with probability
    ``p`` (a field of every subclass).

    :meth:`apply` draws, from the generator and in this order, whether each image is
    changed, then everything :meth:`change` draws for the whole batch: the same number of
    draws whichever images are chosen.
    """

    p: float

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return every image of the float batch ``(N, C, H, W)`` changed (values in [0, 1])."""
        raise NotImplementedError

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch with a random share ``p`` of its images changed."""
        chosen = torch.rand(images.shape[0], generator=generator) < self.p
        changed = self.change(images, generator)
        return torch.where(chosen.to(images.device).view(-1, 1, 1, 1), changed, images)

    def warp(self, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Not a warp: raises :class:`TypeError` (call the augmentation on the images)."""
        raise TypeError(f"{type(self).__name__} changes pixel values; it does not warp a grid")


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    # Drawn on the CPU from the CPU generator, so every device sees the same numbers.
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def _resample(
    images: torch.Tensor, warps: Sequence[Augmentation], generator: torch.Generator
) -> torch.Tensor:
    """Warp the identity grid with every warp in turn, then resample the images once."""
    if not warps:
        return images
    n, c, h, w = images.shape
    identity = torch.eye(2, 3, dtype=images.dtype, device=images.device).expand(n, 2, 3)
    grid = F.affine_grid(identity, [n, c, h, w], align_corners=False)
    for augmentation in warps:
        grid = augmentation.warp(grid, generator)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Compose(Augmentation):
    """Apply several augmentations in order.

    Consecutive warps (:class:`RandomAffine`, :class:`ElasticDistortion`) are chained on one
    sampling grid and the images resampled once (bilinear, zero padding); a pixel
    augmentation (:class:`PixelAugmentation`) changes the images where it stands in the
    order. A ``Compose`` given inside another is flattened into it.

    Args:
        augmentations: The augmentations, applied in order.
    """

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations: list[Augmentation] = []
        for augmentation in augmentations:
            if not isinstance(augmentation, Augmentation):
                raise TypeError(f"not an augmentation: {augmentation!r}")
            if isinstance(augmentation, Compose):
                self.augmentations.extend(augmentation.augmentations)
            else:
                self.augmentations.append(augmentation)

    def warp(self, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Chain the warps (:class:`TypeError` if a pixel augmentation is among them)."""
        for augmentation in self.augmentations:
            grid = augmentation.warp(grid, generator)
        return grid

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a float batch ``(N, C, H, W)`` of *unnormalised* images (background 0,
        values in [0, 1])."""
        pending: list[Augmentation] = []
        for augmentation in self.augmentations:
            if isinstance(augmentation, PixelAugmentation):
                images = augmentation.apply(_resample(images, pending, generator), generator)
                pending = []
            else:
                pending.append(augmentation)
        return _resample(images, pending, generator)

    def __repr__(self) -> str:
        return f"Compose({self.augmentations!r})"
