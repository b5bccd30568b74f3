"""Turn an ordinary image of a digit into an MNIST-like 28x28 input.

MNIST digits are white on black, fitted into a 20x20 box with their aspect ratio kept
(anti-aliased), and placed in a 28x28 image so that their centre of mass lies at the
centre. :func:`to_mnist` repeats those steps for any picture: any size, colour or
greyscale, dark-on-light or light-on-dark, with or without transparency.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data import IMAGE_SIZE, MNIST_MEAN, MNIST_STD, DataError, normalize

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["IMAGE_SUFFIXES", "ImageError", "MNISTTransform", "load_image", "preprocess", "to_mnist"]

#: File suffixes read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_BOX = 20  # MNIST fits each digit into a 20x20 box ...
_SIZE = IMAGE_SIZE  # ... inside a 28x28 image.
#: Pictures with more pixels are first reduced by an integer factor (see ``_shrink``).
_WORK_PIXELS = 4096 * 4096


class ImageError(DataError):
    """An image cannot be read or holds no digit; the message starts with the file (if any)."""


#: What a file that is not a regular file is, in words.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not read (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((kind for test, kind in _KINDS if test(mode)), "a special file")
    return f"not a regular file but {kind}; it was not opened"


def _open_regular_file(path: Path) -> int:
    """Open ``path`` for reading, refusing anything but a non-empty regular file.

    ``stat`` comes first, so a FIFO, a device or a socket is never opened (opening a FIFO
    blocks until a writer comes); the descriptor is opened non-blocking and checked again
    with ``fstat``, in case the file was swapped in between.

    Raises:
        ImageError: Naming the file and what it is.
    """
    try:
        problem = _not_regular(os.stat(path).st_mode)
        if problem is not None:
            raise ImageError(f"{path}: {problem}")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise ImageError(f"{path}: a dangling symbolic link (to {target}, missing)") from None
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError(f"{path}: a symbolic link loop (it never reaches a file)") from None
        raise ImageError(f"{path}: cannot open the file ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = _not_regular(info.st_mode)
    if problem is None and info.st_size == 0:
        problem = "the file is empty (0 bytes)"
    if problem is not None:
        os.close(fd)
        raise ImageError(f"{path}: {problem}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def _bomb_message(exc: Exception, limit: int | None) -> str:
    """Pillow's decompression-bomb message, reworded: the declared size and the limit."""
    numbers = re.findall(r"\d+", str(exc))
    if not numbers or limit is None:
        return f"refused as a possible decompression bomb ({exc})"
    return (
        f"refused as a possible decompression bomb: it declares {int(numbers[0]):,} pixels, "
        f"more than PIL.Image.MAX_IMAGE_PIXELS ({limit:,})"
    )


def load_image(path: str | os.PathLike[str]) -> Image:
    """Open an image file as a PIL image (fully read, so the file can be closed).

    Only a non-empty regular file is opened (a folder, FIFO, device or socket is refused
    without being opened). Pillow's decompression-bomb guard is a refusal at both of its
    levels: a picture with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` is refused as is
    one with twice as many (Pillow only warns for the first); ``DecompressionBombWarning``
    is turned into an error for the duration of the call only, and the limit is read at
    call time, so a program that changes it is obeyed.

    Args:
        path: The file.

    Returns:
        The picture, upright (the EXIF orientation applied).

    Raises:
        ImageError: If the file is missing, not a regular file, empty, too large, truncated,
            corrupt or not an image; the message starts with the path.
    """
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    with os.fdopen(_open_regular_file(path), "rb") as file:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", PILImage.DecompressionBombWarning)
                with PILImage.open(file) as image:
                    image.load()
                    # Phone cameras store photos sideways with an orientation tag: apply it
                    # (into a new image, detached from the file).
                    upright: Image = ImageOps.exif_transpose(image)
                    return upright
        except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as exc:
            raise ImageError(f"{path}: {_bomb_message(exc, PILImage.MAX_IMAGE_PIXELS)}") from None
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not a readable image (not a format Pillow knows)") from None
        except Exception as exc:  # Pillow's decoders raise many types on hostile input
            reason = " ".join(str(exc).split()) or type(exc).__name__  # one line
            raise ImageError(f"{path}: not a readable image ({reason})") from None


#: Pillow modes holding 16-bit unsigned integers: their range is 0-65535.
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
#: Pillow modes with transparency, drawn over the background the ink contrasts with.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def _to_0_255(
    values: torch.Tensor, *, integer: bool, full_scale: float | None = None
) -> torch.Tensor:
    """Float pixels in [0, 255] from pixels of any range.

    Args:
        values: The pixels, as floats.
        integer: Whether they come from integer data (then [0, 1] is not a usual range).
        full_scale: The value that means white (255 for 8-bit, 65535 for 16-bit data); if
            ``None``, the smallest usual range that holds the values: [0, 1] for floats,
            then [0, 255], then [0, 65535]; values outside all of them (negative ones, or
            32-bit integers above 65535) are stretched from their minimum to their maximum.

    Raises:
        ImageError: If a value is NaN or infinite.
    """
    x = values.float()
    if x.numel() == 0:
        return x
    if not bool(torch.isfinite(x).all()):
        raise ImageError("the image holds NaN or infinite values")
    if full_scale is None:
        lo, hi = float(x.min()), float(x.max())
        usual = (255.0, 65535.0) if integer else (1.0, 255.0, 65535.0)
        full_scale = next((top for top in usual if lo >= 0 and hi <= top), None)
        if full_scale is None:
            return (x - lo) * (255.0 / (hi - lo)) if hi > lo else torch.zeros_like(x)
    return x if full_scale == 255 else x * (255.0 / full_scale)


def _alpha_over_background(image: Image) -> torch.Tensor:
    """Greyscale of a picture with transparency, drawn over the colour its ink contrasts with."""
    import numpy as np

    rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
    a = torch.from_numpy(np.array(rgba.getchannel("A"), dtype=np.float32)) / 255.0
    grey = torch.from_numpy(np.array(rgba.convert("L"), dtype=np.float32))
    # Draw the image over the colour it contrasts with most: a digit drawn in dark ink
    # on a transparent sheet goes over white, a light one over black.
    opaque = a > 0.5
    ink = grey[opaque].mean() if bool(opaque.any()) else torch.tensor(0.0)
    background = 255.0 if float(ink) < 128 else 0.0
    return grey * a + background * (1 - a)


def _greyscale(image: Image) -> torch.Tensor:
    """Greyscale float pixels in [0, 255]; transparent pixels become the background.

    16-bit (``I;16``), 32-bit integer (``I``) and float (``F``) pictures are read with
    their real value range (see :func:`_to_0_255`), not clipped to 8 bits.

    Raises:
        ImageError: If the mode cannot be turned into greyscale, or a value is not finite.
    """
    import numpy as np

    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        return _alpha_over_background(image)
    if image.mode in _UINT16_MODES or image.mode in ("I", "F"):
        values = torch.from_numpy(np.array(image, dtype=np.float32))
        if (factor := _shrink_factor(image)) > 1:  # box averaging, as _shrink does
            pool = torch.nn.functional.avg_pool2d
            values = pool(values[None, None], factor, ceil_mode=True)[0, 0]
        full_scale = 65535.0 if image.mode in _UINT16_MODES else None
        return _to_0_255(values, integer=image.mode != "F", full_scale=full_scale)
    try:
        grey = image.convert("L") if image.mode != "L" else image
    except ValueError:
        raise ImageError(f"pictures in mode {image.mode!r} cannot be made greyscale") from None
    return torch.from_numpy(np.array(grey, dtype=np.float32))


def to_mnist(image: Image | torch.Tensor | str | os.PathLike[str]) -> torch.Tensor:
    """Make an MNIST-like ``uint8`` image of shape ``(28, 28)`` from a picture of one digit.

    Steps, as MNIST was made: greyscale; invert if the background is light (MNIST is white
    on black); crop to the digit; scale it to fit a 20x20 box keeping its aspect ratio;
    paste it into 28x28 so that its centre of mass is at the centre.

    Pixel values are read in their real range: 8-bit pictures as 0-255, 16-bit ones
    (``I;16``) as 0-65535, and 32-bit integer (``I``) and float (``F``) pictures and
    tensors by the smallest usual range that holds their values: [0, 1] (floats only),
    [0, 255], [0, 65535], else from their minimum to their maximum.

    Args:
        image: A PIL image, a file path (see :func:`load_image`), or a tensor of shape
            ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)`` (``uint8`` 0-255, float 0-1 or
            0-255, or any other range as above).

    Returns:
        A ``uint8`` tensor of shape ``(28, 28)``, white digit on black.

    Raises:
        ImageError: If the image cannot be read or is blank; for a file, the message starts
            with its path.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        picture = load_image(path)
        try:
            return _digit(_greyscale(_shrink(picture)))
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}") from None
    if isinstance(image, torch.Tensor):
        return _digit(_tensor_to_grey(image))
    return _digit(_greyscale(_shrink(image)))


def _shrink_factor(image: Image) -> int:
    return math.ceil(math.sqrt(image.width * image.height / _WORK_PIXELS))


def _shrink(image: Image) -> Image:
    """A picture of more than :data:`_WORK_PIXELS` pixels, reduced by an integer factor.

    Box averaging (``Image.reduce``) keeps memory and time bounded for huge pictures; the
    digit ends up 20 pixels tall anyway, so the result changes by a few grey levels at most.
    16-bit pictures (which ``reduce`` does not take) are averaged by :func:`_greyscale`.
    """
    factor = _shrink_factor(image)
    if factor <= 1 or image.mode in _UINT16_MODES:
        return image
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce() does not take: greyscale works on the full size
        return image


def _digit(grey: torch.Tensor) -> torch.Tensor:
    """The MNIST steps after greyscale: invert, crop, scale into 20x20, centre of mass."""
    import numpy as np
    from PIL import Image as PILImage

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
    digit = torch.from_numpy(np.array(resized, dtype=np.float32))
    # Centre of mass of the digit, then the offset that puts it at the image centre.
    total = float(digit.sum())
    ys = torch.arange(new_h, dtype=torch.float32)
    xs = torch.arange(new_w, dtype=torch.float32)
    cy = float((digit.sum(dim=1) * ys).sum()) / total
    cx = float((digit.sum(dim=0) * xs).sum()) / total
    top = min(max(round(_SIZE / 2 - 0.5 - cy), 0), _SIZE - new_h)
    left = min(max(round(_SIZE / 2 - 0.5 - cx), 0), _SIZE - new_w)
    out = torch.zeros(_SIZE, _SIZE)
    out[top : top + new_h, left : left + new_w] = digit
    return out.round().clamp(0, 255).to(torch.uint8)


def _tensor_to_grey(image: torch.Tensor) -> torch.Tensor:
    """Greyscale float pixels in [0, 255] from an image tensor (``uint8`` is 0-255)."""
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
    if image.dtype == torch.uint8:
        return x.float()
    if image.dtype == torch.bool:
        return x.float() * 255.0
    return _to_0_255(x.float(), integer=not image.is_floating_point())


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


def preprocess(images: Any, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
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
