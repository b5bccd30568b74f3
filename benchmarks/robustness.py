"""Robustness of the bundled weights: accuracy on shifted, rotated and noisy test images.

    python benchmarks/robustness.py --data-dir ../shared/data/mnist

Prints one row per weight set of the dataset and one column per corruption of its test
set: unchanged; shifted by 2 pixels (each of the four directions, averaged); rotated by
+15 and -15 degrees (averaged); Gaussian noise of standard deviation 0.3 and 0.5 (in [0, 1]
pixel units, clipped, fixed seed).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from lenet5 import LeNet5, evaluate
from lenet5.data import ImageSet, load_dataset
from lenet5.weights import REGISTRY


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = images[:, ys, xs]
    return out


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    angle = math.radians(degrees)
    theta = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]]
    ).expand(images.shape[0], 2, 3)
    x = images.float().unsqueeze(1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def noise(images: torch.Tensor, std: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    noisy = images.float() / 255 + std * torch.randn(images.shape, generator=generator)
    return (noisy.clamp(0, 1) * 255).round().to(torch.uint8)


CORRUPTIONS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "clean": [lambda x: x],
    "shift 2px": [lambda x, d=d: shift(x, *d) for d in ((2, 0), (-2, 0), (0, 2), (0, -2))],
    "rotate 15°": [lambda x: rotate(x, 15), lambda x: rotate(x, -15)],
    "noise 0.3": [lambda x: noise(x, 0.3)],
    "noise 0.5": [lambda x: noise(x, 0.5)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    test = load_dataset(args.dataset, args.data_dir, split="test")
    names = [n for n, w in REGISTRY.items() if w.dataset == args.dataset]
    print(f"| weights | {' | '.join(CORRUPTIONS)} |")
    print("|---|" + "---|" * len(CORRUPTIONS))
    for name in names:
        model = LeNet5.from_pretrained(name)
        cells = []
        for variants in CORRUPTIONS.values():
            accs = [
                evaluate(
                    model, ImageSet(f(test.images), test.labels, test.classes, test.mean, test.std)
                ).accuracy
                for f in variants
            ]
            cells.append(f"{sum(accs) / len(accs):.2f}%")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
