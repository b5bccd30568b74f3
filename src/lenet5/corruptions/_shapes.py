"""Corruptions of shape: affine moves, stroke thickness, occluding lines, erasing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._pixels import Severity, _gen, _largest, _per_image, _rand, _sample

# --------------------------------------------------------------------------- geometry


def _transform(images: torch.Tensor, matrix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move each image by ``x -> matrix @ x + shift`` about its centre (``shift`` in pixels).

    ``matrix`` is ``(N, 2, 2)`` and ``shift`` ``(N, 2)``, in (x, y) order with y down.
    """
    n, _, h, w = images.shape
    to_grid = torch.tensor([2.0 / w, 2.0 / h], dtype=images.dtype, device=images.device)
    inverse = torch.linalg.inv(matrix.to(images.device, images.dtype))
    offset = -(inverse @ (shift.to(images.device, images.dtype) * to_grid).unsqueeze(-1))
    theta = torch.cat([inverse, offset], dim=-1).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return _sample(images, grid).clamp_(0, 1)


def _angles(value: Severity, n: int) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).reshape(-1).expand(n) * (math.pi / 180)


def rotate(images: torch.Tensor, degrees: Severity) -> torch.Tensor:
    """Rotate about the centre by ``degrees``, with bilinear resampling (zero padding).

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        degrees: The angle; positive turns clockwise as displayed (y pointing down).
    """
    a = _angles(degrees, images.shape[0])
    matrix = torch.stack([a.cos(), -a.sin(), a.sin(), a.cos()], dim=-1).view(-1, 2, 2)
    return _transform(images, matrix, torch.zeros(1, 2))


def scale(images: torch.Tensor, factor: Severity) -> torch.Tensor:
    """Scale about the centre by ``factor``, with bilinear resampling (zero padding).

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        factor: The scale factor (> 0); below 1 the digits get smaller.
    """
    f = torch.as_tensor(factor, dtype=torch.float64).reshape(-1, 1, 1)
    eye = torch.eye(2, dtype=torch.float64, device=f.device)
    return _transform(images, f * eye, torch.zeros(1, 2))


def shear(images: torch.Tensor, degrees: Severity) -> torch.Tensor:
    """Shear horizontally: ``x -> x + tan(degrees) * y`` about the centre (y down).

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        degrees: The shear angle, in (-90, 90); positive moves the bottom to the right.
    """
    t = _angles(degrees, images.shape[0]).tan()
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    matrix = torch.stack([one, t, zero, one], dim=-1).view(-1, 2, 2)
    return _transform(images, matrix, torch.zeros(1, 2))


def translate(images: torch.Tensor, dx: Severity, dy: Severity) -> torch.Tensor:
    """Shift each image; what leaves the frame is lost, what enters it is background.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        dx: Pixels to the right (fractions interpolate bilinearly).
        dy: Pixels down.
    """
    n = images.shape[0]
    x = torch.as_tensor(dx, dtype=torch.float64).reshape(-1).expand(n)
    y = torch.as_tensor(dy, dtype=torch.float64).reshape(-1).expand(n)
    eye = torch.eye(2, dtype=torch.float64).expand(n, 2, 2)
    return _transform(images, eye, torch.stack([x, y.to(x.device)], dim=-1))


# --------------------------------------------------------------------------- strokes


def _morph(images: torch.Tensor, size: int) -> torch.Tensor:
    """Grey-level dilation (``size > 0``) or erosion (``size < 0``) with a square of side
    ``|size| + 1`` pixels (replicated border)."""
    k = abs(size) + 1
    sign = 1.0 if size > 0 else -1.0
    before = (k - 1) // 2
    padded = F.pad(sign * images, (before, k - 1 - before, before, k - 1 - before), "replicate")
    return sign * F.max_pool2d(padded, k, stride=1)


def thickness(images: torch.Tensor, pixels: Severity) -> torch.Tensor:
    """Make strokes wider (grey-level dilation, a max-pool) or narrower (erosion, a min-pool).

    A change of ``k`` whole pixels pools over a square of side ``k + 1`` (replicated border);
    fractions interpolate linearly between the whole-pixel results.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        pixels: The change of stroke width in pixels: positive thickens, negative thins.
    """
    top = math.ceil(_largest(pixels))
    p = _per_image(pixels, images)
    out = torch.zeros_like(images)
    for level in range(-top, top + 1):
        weight = (1 - (p - level).abs()).clamp(min=0)
        out += weight * (images if level == 0 else _morph(images, level))
    return out.clamp_(0, 1)


def _pixel_coordinates(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres ``(ys, xs)`` relative to the image centre, each ``(1, 1, H, W)``."""
    h, w = images.shape[-2:]
    ys = torch.arange(h, dtype=images.dtype, device=images.device) - (h - 1) / 2
    xs = torch.arange(w, dtype=images.dtype, device=images.device) - (w - 1) / 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return grid_y.view(1, 1, h, w), grid_x.view(1, 1, h, w)


def occlusion_lines(
    images: torch.Tensor,
    count: int,
    width: Severity,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """Draw ``count`` straight lines of ``width`` pixels across each image, painted
    ``value`` (0: the background colour, so the lines cut the strokes they cross).

    Each line has a random direction and passes through a random point within a quarter of
    the image size of its centre, so it crosses the digit; its edges are antialiased.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        count: The number of lines per image.
        width: Their width, in pixels.
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
        value: Their colour, in [0, 1].
    """
    n, _, h, w = images.shape
    generator = _gen(generator)
    through = (_rand((n, count, 2), generator, images) - 0.5) * 0.5
    angle = _rand((n, count), generator, images) * math.pi
    ys, xs = _pixel_coordinates(images)
    cy = (through[..., 0] * h).view(n, count, 1, 1)
    cx = (through[..., 1] * w).view(n, count, 1, 1)
    a = angle.view(n, count, 1, 1)
    distance = ((xs - cx) * -a.sin() + (ys - cy) * a.cos()).abs()
    half = _per_image(width, images) / 2
    mask = (half + 0.5 - distance).clamp(0, 1).amax(dim=1, keepdim=True)
    return images * (1 - mask) + value * mask


def erase(
    images: torch.Tensor,
    area: Severity,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017): paint one rectangle of each image ``value``.

    The rectangle covers a fraction ``area`` of the image (less where it would not fit),
    with an aspect ratio drawn log-uniformly from ``[0.3, 3.3]``, at a random place.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        area: The rectangle's share of the image, in [0, 1].
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
        value: Its colour, in [0, 1].
    """
    n, _, h, w = images.shape
    u = _rand((n, 3), _gen(generator), images).view(n, 3, 1, 1)
    ratio = torch.exp((u[:, :1] * 2 - 1) * math.log(3.3))
    size = _per_image(area, images) * h * w
    rh = (size * ratio).sqrt().clamp(max=h)
    rw = (size / ratio).sqrt().clamp(max=w)
    top = u[:, 1:2] * (h - rh)
    left = u[:, 2:3] * (w - rw)
    ys = torch.arange(h, dtype=images.dtype, device=images.device).view(1, 1, h, 1) + 0.5
    xs = torch.arange(w, dtype=images.dtype, device=images.device).view(1, 1, 1, w) + 0.5
    inside = (ys >= top) & (ys < top + rh) & (xs >= left) & (xs < left + rw)
    return torch.where(inside, value, images)
