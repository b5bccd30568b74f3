"""Turn an ordinary image of a digit into an MNIST-like 28x28 input.

MNIST digits are white on black, fitted into a 20x20 box with their aspect ratio kept
(anti-aliased), and placed in a 28x28 image so that their centre of mass lies at the
centre. :func:`to_mnist` repeats those steps for any picture: any size, colour or
greyscale, dark-on-light or light-on-dark, with or without transparency.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data import MNIST_MEAN, MNIST_STD, DataError, normalize

if TYPE_CHECKING:
    from PIL.Image import Image
    from PIL.Image import Image as PILImageType

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "MNISTTransform",
    "load_image",
    "preprocess",
    "to_mnist",
]

#: File suffixes read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_BOX = 20  # MNIST fits each digit into a 20x20 box ...
_SIZE = 28  # ... inside a 28x28 image.


class ImageError(DataError):
    """An image cannot be read or holds no digit."""


def load_image(path: str | os.PathLike[str]) -> Image:
    """Open an image file as a PIL image (fully read, so the file can be closed).

    Raises:
        ImageError: If the file is missing or not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            # Phone cameras store photos sideways with an orientation tag: apply it.
            upright: PILImageType = ImageOps.exif_transpose(image)
            return upright.copy()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None


def _greyscale(image: Image) -> torch.Tensor:
    """Greyscale float pixels in [0, 255]; transparent pixels become the background."""
    from PIL import Image as PILImage

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = torch.frombuffer(bytearray(rgba.getchannel("A").tobytes()), dtype=torch.uint8)
        grey_img = rgba.convert("L")
        grey = torch.frombuffer(bytearray(grey_img.tobytes()), dtype=torch.uint8).float()
        a = alpha.float() / 255.0
        # Draw the image over the colour it contrasts with most: a digit drawn in dark ink
        # on a transparent sheet goes over white, a light one over black.
        opaque = a > 0.5
        ink = grey[opaque].mean() if bool(opaque.any()) else torch.tensor(0.0)
        background = 255.0 if float(ink) < 128 else 0.0
        grey = grey * a + background * (1 - a)
        return grey.reshape(image.height, image.width)
    grey_img = image.convert("L") if image.mode != "L" else image
    if not isinstance(grey_img, PILImage.Image):  # pragma: no cover - PIL always returns one
        raise ImageError("cannot convert the image to greyscale")
    data = torch.frombuffer(bytearray(grey_img.tobytes()), dtype=torch.uint8)
    return data.float().reshape(image.height, image.width)


def to_mnist(image: Image | torch.Tensor | str | os.PathLike[str]) -> torch.Tensor:
    """Make an MNIST-like ``uint8`` image of shape ``(28, 28)`` from a picture of one digit.

    Steps, as MNIST was made: greyscale; invert if the background is light (MNIST is white
    on black); crop to the digit; scale it to fit a 20x20 box keeping its aspect ratio;
    paste it into 28x28 so that its centre of mass is at the centre.

    Args:
        image: A PIL image, a file path, or a tensor of shape ``(H, W)``, ``(1, H, W)`` or
            ``(3, H, W)`` (``uint8`` 0-255, or float 0-1).

    Returns:
        A ``uint8`` tensor of shape ``(28, 28)``, white digit on black.

    Raises:
        ImageError: If the image cannot be read or is blank.
    """
    from PIL import Image as PILImage

    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    grey = _tensor_to_grey(image) if isinstance(image, torch.Tensor) else _greyscale(image)
    if grey.numel() == 0:
        raise ImageError("the image is empty")
    # The background is whatever dominates the border.
    border = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(border.median())
    if background > 127:  # dark on light: invert to MNIST's light on dark
        grey = 255.0 - grey
        background = 255.0 - background
    grey = (grey - background).clamp(0, 255)  # a grey sheet becomes black
    peak = float(grey.max())
    if peak < 32:
        raise ImageError("the image is blank: no digit stands out from the background")
    grey = grey * (255.0 / peak)  # full contrast, as in MNIST
    mask = grey > 0.1 * 255
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    crop = grey[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    h, w = crop.shape
    scale = _BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    pil = PILImage.fromarray(crop.round().to(torch.uint8).numpy(), mode="L")
    resized = pil.resize((new_w, new_h), PILImage.Resampling.LANCZOS)
    digit = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    digit = digit.reshape(new_h, new_w).float()
    # Centre of mass of the digit, then the offset that puts it at the image centre.
    total = float(digit.sum())
    ys = torch.arange(new_h, dtype=torch.float32)
    xs = torch.arange(new_w, dtype=torch.float32)
    cy = float((digit.sum(dim=1) * ys).sum()) / total
    cx = float((digit.sum(dim=0) * xs).sum()) / total
    top = round(_SIZE / 2 - 0.5 - cy)
    left = round(_SIZE / 2 - 0.5 - cx)
    top = min(max(top, 0), _SIZE - new_h)
    left = min(max(left, 0), _SIZE - new_w)
    out = torch.zeros(_SIZE, _SIZE)
    out[top : top + new_h, left : left + new_w] = digit
    return out.round().clamp(0, 255).to(torch.uint8)


def _tensor_to_grey(image: torch.Tensor) -> torch.Tensor:
    x = image.detach().cpu()
    if x.dim() == 3:
        if x.shape[0] == 3:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(3, 1, 1)
            x = (x.float() * weights).sum(dim=0)
        elif x.shape[0] == 1:
            x = x[0]
    if x.dim() != 2:
        raise ImageError(
            f"expected an image tensor (H, W), (1, H, W) or (3, H, W), got {tuple(image.shape)}"
        )
    x = x.float()
    if image.is_floating_point():
        x = x * 255.0
    return x


@dataclass(frozen=True)
class MNISTTransform:
    """Prepare one picture for the model: :func:`to_mnist`, then normalisation.

    What :meth:`lenet5.weights.Weights.transforms` returns, with the weight set's ``mean``
    and ``std`` (as torchvision's ``weights.transforms()``).

    Args:
        mean: Normalisation mean of the weights, in [0, 1] units.
        std: Normalisation standard deviation.

    Example:
        >>> import torch
        >>> from lenet5.preprocess import MNISTTransform
        >>> digit = torch.zeros(40, 30)
        >>> digit[5:35, 12:18] = 1.0  # a white stroke on black, floats in [0, 1]
        >>> MNISTTransform()(digit).shape
        torch.Size([1, 28, 28])
    """

    mean: float = MNIST_MEAN
    std: float = MNIST_STD

    def __call__(self, image: Image | torch.Tensor | str | os.PathLike[str]) -> torch.Tensor:
        """Prepare ``image`` (anything :func:`to_mnist` takes).

        Returns:
            A float tensor of shape ``(1, 28, 28)``: ``(to_mnist(image) / 255 - mean) / std``.

        Raises:
            ImageError: If the image cannot be read or is blank.
        """
        return normalize(to_mnist(image)[None], self.mean, self.std)[0]


def preprocess(
    images: Any,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
) -> torch.Tensor:
    """Preprocess one or several pictures into a normalised model input.

    Args:
        images: One image or a list of images (anything :func:`to_mnist` takes).
        mean: Normalisation mean of the weights used.
        std: Normalisation standard deviation.

    Returns:
        A float tensor of shape ``(N, 1, 28, 28)``, ready for the model.
    """
    items = images if isinstance(images, (list, tuple)) else [images]
    transform = MNISTTransform(mean, std)
    return torch.stack([transform(item) for item in items])
