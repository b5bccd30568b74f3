"""The geometric augmentations: random affine warps and elastic distortions of the grid."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._base import Augmentation, _uniform, check_range

#: The largest scale factor of :class:`RandomAffine`.
MAX_SCALE = 10.0
#: The largest ``alpha`` of :class:`ElasticDistortion`, in pixels.
MAX_ALPHA = 1000.0
#: The range of ``sigma`` of :class:`ElasticDistortion`, in pixels: a narrower Gaussian is
#: no blur at all, a wider one a constant shift, and their weights would under- or overflow.
SIGMA_RANGE = (0.01, 1000.0)


@dataclass
class RandomAffine(Augmentation):
    """Random rotation, translation, scaling and shear of each image.

    Args:
        degrees: Rotation drawn from ``[-degrees, degrees]``, ``0 <= degrees <= 180``.
        translate: Shift drawn from ``[-translate, translate]`` of the image size, per axis,
            ``0 <= translate < 1``.
        scale: Scale factor drawn from ``[scale[0], scale[1]]``, ``0 < scale[0] <= scale[1]
            <= 10`` (in a spec string, ``scale=0.1`` means ``(0.9, 1.1)``).
        shear: Horizontal shear angle drawn from ``[-shear, shear]`` degrees, ``0 <= shear
            < 90``.
    """

    degrees: float = 10.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 10.0

    def __post_init__(self) -> None:
        self.degrees = check_range("affine", "degrees", self.degrees, 0, 180)
        self.translate = check_range("affine", "translate", self.translate, 0, 1, high_open=True)
        scale = self.scale
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise ValueError(f"affine: scale must be a (low, high) pair, got {scale!r}")
        low = check_range("affine", "scale's low end", scale[0], 0, MAX_SCALE, low_open=True)
        high = check_range("affine", "scale's high end", scale[1], low, MAX_SCALE)
        self.scale = (low, high)
        self.shear = check_range("affine", "shear", self.shear, 0, 90, high_open=True)

    def warp(self, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, device = grid.shape[0], grid.device
        angle = _uniform(n, -self.degrees, self.degrees, generator, device) * (math.pi / 180)
        shear = _uniform(n, -self.shear, self.shear, generator, device) * (math.pi / 180)
        scale = _uniform(n, self.scale[0], self.scale[1], generator, device)
        # Grid coordinates span [-1, 1]: a shift of t image widths is 2t.
        tx = _uniform(n, -self.translate, self.translate, generator, device) * 2
        ty = _uniform(n, -self.translate, self.translate, generator, device) * 2
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # The grid maps output pixels to input pixels, so it holds the inverse transform:
        # x_in = A^-1 (x_out - t), with A = R(angle) @ Shear @ (scale * I).
        a = torch.stack([cos, cos * tan - sin, sin, sin * tan + cos], dim=1).view(n, 2, 2)
        a = a * scale.view(n, 1, 1)
        det = (a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]).view(n, 1, 1)
        inverse = (
            torch.stack([a[:, 1, 1], -a[:, 0, 1], -a[:, 1, 0], a[:, 0, 0]], dim=1).view(n, 2, 2)
            / det
        )
        x = grid[..., 0] - tx.view(n, 1, 1)
        y = grid[..., 1] - ty.view(n, 1, 1)
        m = inverse.view(n, 4, 1, 1)
        # Written out: a batched 2x2 matrix product is slow as bmm on the CPU.
        return torch.stack([m[:, 0] * x + m[:, 1] * y, m[:, 2] * x + m[:, 3] * y], dim=-1)


@dataclass
class ElasticDistortion(Augmentation):
    """Elastic distortion (Simard et al., 2003).

    A displacement field of uniform noise in [-1, 1] per pixel is smoothed with a Gaussian of
    standard deviation ``sigma`` pixels and scaled by ``alpha`` pixels.

    Args:
        alpha: Strength of the displacement, in pixels, ``0 <= alpha <= 1000``.
        sigma: Smoothness of the displacement, in pixels, ``0.01 <= sigma <= 1000``.
    """

    alpha: float = 34.0
    sigma: float = 4.0

    def __post_init__(self) -> None:
        # NaN passes "alpha < 0": every bound is checked as "inside", never as "not outside".
        self.alpha = check_range("elastic", "alpha", self.alpha, 0, MAX_ALPHA)
        self.sigma = check_range("elastic", "sigma", self.sigma, *SIGMA_RANGE)

    def warp(self, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, h, w, _ = grid.shape
        noise = torch.rand(n, 2, h, w, generator=generator).to(grid.device, grid.dtype) * 2 - 1
        # Gaussian blur (reflecting at the border) as two small matrix products, which is
        # far cheaper than a convolution on the CPU and exactly the same sums.
        blur_h = _blur_matrix(h, self.sigma, grid.device, grid.dtype)
        blur_w = _blur_matrix(w, self.sigma, grid.device, grid.dtype)
        # Two plain 2-D matrix products: along the width, then along the height.
        field = (noise.reshape(-1, w) @ blur_w.T).reshape(n * 2, h, w)
        field = (field.transpose(1, 2).reshape(-1, h) @ blur_h.T).reshape(n * 2, w, h)
        field = field.transpose(1, 2).reshape(n, 2, h, w)
        # Pixels to grid units: the grid spans 2 over w (or h) pixels.
        scale = torch.tensor([2.0 / w, 2.0 / h], dtype=grid.dtype, device=grid.device)
        return grid + field.permute(0, 2, 3, 1) * self.alpha * scale


@functools.lru_cache(maxsize=16)
def _blur_matrix(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``M`` such that ``M @ x`` is ``x`` blurred along its first axis with reflect padding."""
    radius = min(max(1, int(3 * sigma)), size - 1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    identity = torch.eye(size, dtype=torch.float64).unsqueeze(1)  # (size, 1, size)
    padded = F.pad(identity, (radius, radius), mode="reflect")
    rows = F.conv1d(padded, kernel.view(1, 1, -1)).squeeze(1)  # row j: blur of e_j
    return rows.T.contiguous().to(device=device, dtype=dtype)
