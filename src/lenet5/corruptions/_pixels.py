"""Corruptions of pixel values: noise, blur, contrast, brightness and fog (and the helpers
the other corruptions share)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

#: A severity: one number for the whole batch, or a tensor of one value per image.
Severity = float | torch.Tensor
#: A fixed corruption: ``(images, generator) -> images``, on float images in ``[0, 1]``.
Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _per_image(value: Severity, images: torch.Tensor) -> torch.Tensor:
    """``value`` as a ``(1 or N, 1, 1, 1)`` tensor on the images' device and dtype."""
    return torch.as_tensor(value, dtype=images.dtype).to(images.device).reshape(-1, 1, 1, 1)


def _largest(value: Severity) -> float:
    """The largest absolute value (read before the value moves to the device)."""
    return (
        float(torch.as_tensor(value).abs().max()) if isinstance(value, torch.Tensor) else abs(value)
    )


def _gen(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def _rand(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    like: torch.Tensor,
    normal: bool = False,
) -> torch.Tensor:
    """Uniform ``[0, 1)`` (or standard normal) draws on the CPU, moved to ``like``'s device."""
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator).to(like.device, like.dtype)


# --------------------------------------------------------------------------- noise


def gaussian_noise(
    images: torch.Tensor, std: Severity, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` to every pixel, then clip.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        std: The noise's standard deviation, in pixel units of [0, 1].
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
    """
    noise = _rand(tuple(images.shape), _gen(generator), images, normal=True)
    return (images + _per_image(std, images) * noise).clamp_(0, 1)


def shot_noise(
    images: torch.Tensor, photons: Severity, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Photon (Poisson) noise, as if a pixel of value ``x`` counted ``x * photons`` photons.

    Drawn with the normal approximation of the Poisson distribution (mean ``x``, variance
    ``x / photons``), which runs on any device; the background (0) stays 0. Fewer photons
    are noisier.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        photons: The photon count of a white pixel (> 0).
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
    """
    noise = _rand(tuple(images.shape), _gen(generator), images, normal=True)
    spread = (images.clamp(min=0) / _per_image(photons, images)).sqrt()
    return (images + spread * noise).clamp_(0, 1)


def impulse_noise(
    images: torch.Tensor, amount: Severity, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Salt-and-pepper noise: a fraction ``amount`` of the pixels, half set to 0, half to 1.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        amount: The share of pixels changed, in [0, 1].
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
    """
    u = _rand(tuple(images.shape), _gen(generator), images)
    a = _per_image(amount, images)
    return torch.where(u < a / 2, 0.0, torch.where(u < a, 1.0, images))


# --------------------------------------------------------------------------- blur


def _gauss_matrices(size: int, sigma: torch.Tensor) -> torch.Tensor:
    """``(N, 1, size, size)`` matrices that blur along one axis, with zero padding."""
    s = sigma.reshape(-1, 1, 1, 1).clamp(min=1e-3)
    offsets = torch.arange(size, device=s.device, dtype=s.dtype)
    d = offsets.view(-1, 1) - offsets.view(1, -1)
    weights = torch.exp(-(d**2) / (2 * s**2))
    every = torch.arange(1 - size, size, device=s.device, dtype=s.dtype)
    return weights / torch.exp(-(every**2) / (2 * s**2)).sum(-1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: Severity) -> torch.Tensor:
    """Blur with a Gaussian of standard deviation ``sigma`` pixels (zero padding).

    Computed as two batched matrix products (along the height, then the width), so each image
    may have its own ``sigma``; ``sigma`` near 0 leaves the image as it is.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        sigma: The Gaussian's standard deviation, in pixels (>= 0).
    """
    s = _per_image(sigma, images)
    rows = _gauss_matrices(images.shape[-2], s)
    cols = _gauss_matrices(images.shape[-1], s)
    return (rows @ images @ cols.transpose(-1, -2)).clamp_(0, 1)


def _identity_grid(images: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    eye = torch.eye(2, 3, dtype=images.dtype, device=images.device).expand(n, 2, 3)
    return F.affine_grid(eye, [n, c, h, w], align_corners=False)


def _sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling with zero padding (the background)."""
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def motion_blur(images: torch.Tensor, length: Severity, angle: Severity = 0.0) -> torch.Tensor:
    """Blur along a straight line, as a camera moving during the exposure.

    The mean of the image moved along a segment of ``length`` pixels centred on each pixel,
    in the direction ``angle`` (degrees, 0 = horizontal), sampled every half pixel or less.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        length: The length of the smear, in pixels (>= 0).
        angle: Its direction in degrees: 0 is horizontal, 90 vertical.
    """
    n, _, h, w = images.shape
    count = 2 * math.ceil(_largest(length)) + 1
    theta = _per_image(angle, images).view(-1, 1, 1) * (math.pi / 180)
    size = _per_image(length, images).view(-1, 1, 1)
    # A move of one pixel is 2/w (2/h) in grid coordinates.
    step = torch.cat([torch.cos(theta) * 2 / w, torch.sin(theta) * 2 / h], dim=-1)
    grid = _identity_grid(images)
    out = torch.zeros_like(images)
    for t in torch.linspace(-0.5, 0.5, count).tolist():
        out += _sample(images, grid + (t * size * step).view(-1, 1, 1, 2).expand(n, 1, 1, 2))
    return (out / count).clamp_(0, 1)


# --------------------------------------------------------------------------- intensity


def contrast(images: torch.Tensor, factor: Severity) -> torch.Tensor:
    """Scale each image's deviations from its mean by ``factor`` (below 1: lower contrast).

    The background moves up towards the mean: it is no longer 0.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        factor: The scale of the deviations: 1 leaves the image as it is, 0 makes it flat.
    """
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * _per_image(factor, images) + mean).clamp_(0, 1)


def brightness(images: torch.Tensor, delta: Severity) -> torch.Tensor:
    """Add ``delta`` to every pixel, then clip: the background becomes ``delta``.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        delta: The value added, in pixel units of [0, 1].
    """
    return (images + _per_image(delta, images)).clamp_(0, 1)


def fog(
    images: torch.Tensor, strength: Severity, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Low-frequency haze: a smooth random field, blended over the image like white mist.

    The field is uniform noise on a 4x4 and an 8x8 lattice (half weight), upsampled
    bicubically to the image size and rescaled to ``[0, 1]`` per image. Each pixel becomes
    ``1 - (1 - x) * (1 - strength * field)``: strokes stay bright, the background turns into
    patches of grey up to ``strength``.

    Args:
        images: Float images ``(N, C, H, W)`` in [0, 1].
        strength: The haze at its thickest, in [0, 1] (0: none).
        generator: The CPU generator of the random draws (``None``: one seeded with 0).
    """
    n, _, h, w = images.shape
    field = torch.zeros(n, 1, h, w, dtype=images.dtype, device=images.device)
    generator = _gen(generator)
    for cells, weight in ((4, 1.0), (8, 0.5)):
        lattice = _rand((n, 1, cells, cells), generator, images)
        up = F.interpolate(lattice, size=(h, w), mode="bicubic", align_corners=True)
        field += weight * up
    low = field.amin(dim=(2, 3), keepdim=True)
    high = field.amax(dim=(2, 3), keepdim=True)
    field = (field - low) / (high - low).clamp(min=1e-6)
    return (1 - (1 - images) * (1 - _per_image(strength, images) * field)).clamp_(0, 1)
