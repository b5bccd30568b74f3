"""The pixel augmentations: random versions of the corruptions of :mod:`lenet5.corruptions`.

Each draws its per-image parameters from the generator (on the CPU), and changes a random
share ``p`` of the images of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import corruptions as C
from ._base import PixelAugmentation, check_range


def _check(name: str, arg: str, value: object, low: float, high: float) -> None:
    """Raise a ValueError naming the argument and its range unless ``value`` is a finite
    number with ``low <= value <= high``."""
    check_range(name, arg, value, low, high)


def _draw(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` values drawn uniformly from ``[low, high]``, on the CPU."""
    return torch.rand(n, generator=generator) * (high - low) + low


@dataclass
class RandomNoise(PixelAugmentation):
    """Gaussian pixel noise of a random strength (``noise``).

    Args:
        std: The noise's standard deviation is drawn from ``[0, std]`` per image (pixels in
            [0, 1]); the result is clipped to [0, 1]. ``0 <= std <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    std: float = 0.3
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("noise", "std", self.std, 0, 1)
        _check("noise", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        std = _draw(images.shape[0], 0, self.std, generator)
        return C.gaussian_noise(images, std, generator)


@dataclass
class RandomImpulseNoise(PixelAugmentation):
    """Salt-and-pepper noise (``impulse``).

    Args:
        amount: The share of pixels set to 0 or 1 is drawn from ``[0, amount]`` per image.
            ``0 <= amount <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    amount: float = 0.1
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("impulse", "amount", self.amount, 0, 1)
        _check("impulse", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        amount = _draw(images.shape[0], 0, self.amount, generator)
        return C.impulse_noise(images, amount, generator)


@dataclass
class RandomBlur(PixelAugmentation):
    """Gaussian blur of a random width (``blur``).

    Args:
        sigma: The blur's standard deviation is drawn from ``[0, sigma]`` pixels per image.
            ``0 <= sigma <= 5``.
        p: The probability that an image is changed, in [0, 1].
    """

    sigma: float = 1.0
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("blur", "sigma", self.sigma, 0, 5)
        _check("blur", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.gaussian_blur(images, _draw(images.shape[0], 0, self.sigma, generator))


@dataclass
class RandomContrast(PixelAugmentation):
    """Lower contrast (``contrast``): deviations from each image's mean scaled down.

    Args:
        low: The factor is drawn from ``[low, 1]`` per image (the background rises towards
            the mean). ``0 <= low <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    low: float = 0.3
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("contrast", "low", self.low, 0, 1)
        _check("contrast", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.contrast(images, _draw(images.shape[0], self.low, 1, generator))


@dataclass
class RandomBrightness(PixelAugmentation):
    """Raised brightness (``brightness``): a constant added to every pixel, then clipped.

    Args:
        max: The constant (the new background) is drawn from ``[0, max]`` per image.
            ``0 <= max <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    max: float = 0.5
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("brightness", "max", self.max, 0, 1)
        _check("brightness", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.brightness(images, _draw(images.shape[0], 0, self.max, generator))


@dataclass
class RandomFog(PixelAugmentation):
    """Low-frequency haze (``fog``): a smooth random field blended over the image.

    Args:
        max: The haze's strength is drawn from ``[0, max]`` per image (see
            :func:`lenet5.corruptions.fog`). ``0 <= max <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    max: float = 0.5
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("fog", "max", self.max, 0, 1)
        _check("fog", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        strength = _draw(images.shape[0], 0, self.max, generator)
        return C.fog(images, strength, generator)


@dataclass
class RandomThickness(PixelAugmentation):
    """Thicker or thinner strokes (``thickness``): grey-level dilation or erosion.

    Args:
        max: The change of stroke width is drawn from ``[-max, max]`` pixels per image
            (fractions interpolate). ``0 <= max <= 3``.
        p: The probability that an image is changed, in [0, 1].
    """

    max: float = 1.0
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("thickness", "max", self.max, 0, 3)
        _check("thickness", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.thickness(images, _draw(images.shape[0], -self.max, self.max, generator))


@dataclass
class RandomLines(PixelAugmentation):
    """Occluding lines (``lines``): black lines through the digit, cutting its strokes.

    Args:
        count: The number of lines per changed image, a whole number in [1, 10].
        width: Their width in pixels, ``0 < width <= 5``.
        p: The probability that an image is changed, in [0, 1].
    """

    count: int = 2
    width: float = 1.5
    p: float = 0.3

    def __post_init__(self) -> None:
        _check("lines", "count", self.count, 1, 10)
        if not float(self.count).is_integer():
            raise ValueError(f"lines: count must be a whole number, got {self.count}")
        self.count = int(self.count)
        check_range("lines", "width", self.width, 0, 5, low_open=True)
        _check("lines", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.occlusion_lines(images, self.count, self.width, generator)


@dataclass
class RandomErasing(PixelAugmentation):
    """Random erasing (``erase``; Zhong et al., 2017): one rectangle of each changed image
    set to 0, the background.

    Args:
        area: The rectangle's share of the image is drawn from ``[0.02, area]``, its aspect
            ratio log-uniformly from ``[0.3, 3.3]``. ``0.02 <= area <= 1``.
        p: The probability that an image is changed, in [0, 1].
    """

    area: float = 0.2
    p: float = 0.5

    def __post_init__(self) -> None:
        _check("erase", "area", self.area, 0.02, 1)
        _check("erase", "p", self.p, 0, 1)

    def change(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return C.erase(images, _draw(images.shape[0], 0.02, self.area, generator), generator)
