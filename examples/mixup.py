"""Mixup: train LeNet-5 on blends of two images, with the labels blended alike.

A ``Mixup`` callback rewrites each batch in ``on_batch_start``, before the forward pass:
the inputs become ``lam * x + (1 - lam) * x[perm]`` and the targets the same blend of
one-hot labels, with ``lam ~ Beta(alpha, alpha)`` drawn per batch (Zhang et al., 2018).
The Trainer's default loss, the cross-entropy, takes probability targets as they are, so
nothing else changes.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/mixup.py --epochs 5
    python examples/mixup.py --subset 5000 --epochs 20 --alpha 0.4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from lenet5 import Callback, Trainer, TrainState, load_mnist


class Mixup(Callback):
    """Blend each batch with a shuffled copy of itself: inputs and one-hot targets."""

    def __init__(self, alpha: float = 0.2, num_classes: int = 10) -> None:
        self.beta = torch.distributions.Beta(alpha, alpha)
        self.num_classes = num_classes

    def on_batch_start(self, state: TrainState) -> None:
        x, y = state.inputs, state.targets
        assert x is not None
        assert y is not None
        if y.dim() == 1:  # class indices -> probabilities
            y = F.one_hot(y, self.num_classes).to(x.dtype)
        lam = float(self.beta.sample())  # drawn from torch's generator, seeded by the fit
        perm = torch.randperm(x.shape[0], device=x.device)
        state.inputs = lam * x + (1 - lam) * x[perm]
        state.targets = lam * y + (1 - lam) * y[perm]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.2, help="lam ~ Beta(alpha, alpha)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/mixup"))
    args = parser.parse_args()

    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    trainer = Trainer(epochs=args.epochs, callbacks=[Mixup(args.alpha)])
    trainer.fit(train)
    trainer.model.save_pretrained(args.out)  # lenet5 evaluate --weights runs/examples/mixup
    print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")


if __name__ == "__main__":
    main()
