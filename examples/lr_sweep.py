"""A learning-rate sweep, chosen on a validation split, never on the test set.

``ImageSet.split`` carves a validation set out of the training images. Each learning rate
trains a fresh LeNet-5 on the rest and is scored on that validation set; the best one is
chosen there, and only that model is evaluated on the test set, once, so the test accuracy
stays an unbiased estimate. The table is also written to ``--out``/sweep.csv.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/lr_sweep.py --epochs 3
    python examples/lr_sweep.py --subset 10000 --epochs 5 --lrs 1e-4 3e-4 1e-3 3e-3 1e-2
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lenet5 import ImageSet, LeNet5, Trainer, load_mnist


def sweep(
    lrs: list[float], train: ImageSet, val: ImageSet, epochs: int
) -> list[tuple[float, float, float, Trainer[LeNet5]]]:
    """Train one LeNet-5 per learning rate: ``(lr, val loss, val accuracy, trainer)``."""
    results = []
    for lr in lrs:
        trainer = Trainer(epochs=epochs, lr=lr, verbose=False)
        trainer.fit(train)
        result = trainer.evaluate(val)
        results.append((lr, result.loss, result.accuracy, trainer))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2])
    parser.add_argument("--val-size", type=int, help="validation images (default: 1/6, <= 10000)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/lr_sweep"))
    args = parser.parse_args()

    data = load_mnist(args.data_dir).subset(slice(args.subset))
    train, val = data.split(args.val_size or min(10_000, len(data) // 6), seed=0)
    results = sweep(args.lrs, train, val, args.epochs)
    print(f"{'lr':>8}  {'val loss':>8}  {'val accuracy':>12}")
    for lr, loss, accuracy, _ in results:
        print(f"{lr:>8.0e}  {loss:>8.4f}  {accuracy:>11.2f}%")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "sweep.csv", "w", newline="") as f:
        csv.writer(f).writerows([("lr", "val_loss", "val_accuracy")] + [r[:3] for r in results])

    best_lr, _, _, best = max(results, key=lambda r: (r[2], -r[1]))  # accuracy, then loss
    best.model.save_pretrained(args.out / "best")
    test = load_mnist(args.data_dir, split="test")  # read only now, for the chosen model
    print(f"test accuracy: {best.evaluate(test).accuracy:.2f}% (lr {best_lr:.0e}, chosen on val)")


if __name__ == "__main__":
    main()
