"""
A learning-rate sweep
=====================

A sweep that chooses on the test set reports a test accuracy that is no longer an
estimate of anything. This one carves a validation set out of the training images with
:meth:`ImageSet.split <lenet5.data.ImageSet.split>`, trains a fresh LeNet-5 per learning
rate on the rest, chooses the rate on the validation accuracy, and evaluates only the
chosen model on the test set, once. The table also goes to ``--out``/``sweep.csv``.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/lr_sweep.py --epochs 3
   $ python examples/research/lr_sweep.py --subset 10000 --epochs 5 --lrs 1e-4 1e-3 1e-2

This page was built with ``--subset 1024 --epochs 2 --lrs 3e-4 1e-3 3e-3 1e-2``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt

from lenet5 import ImageSet, LeNet5, Trainer, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2])
parser.add_argument("--val-size", type=int, help="default: 1/6 (at most 10,000)")
parser.add_argument("--out", type=Path, default=Path("runs/examples/lr_sweep"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The sweep
# ---------
#
# Every rate gets the same seed, so the runs differ only by their learning rate.

Result = tuple[float, float, float, Trainer[LeNet5]]


def sweep(
    lrs: list[float], train: ImageSet, val: ImageSet, epochs: int
) -> list[Result]:
    """One LeNet-5 per learning rate: ``(lr, val loss, val accuracy, trainer)``."""
    results = []
    for lr in lrs:
        trainer = Trainer(epochs=epochs, lr=lr, verbose=False)
        trainer.fit(train)
        result = trainer.evaluate(val)
        results.append((lr, result.loss, result.accuracy, trainer))
    return results


data = load_mnist(args.data_dir).subset(slice(args.subset))
train, val = data.split(args.val_size or min(10_000, len(data) // 6), seed=0)
results = sweep(args.lrs, train, val, args.epochs)

print(f"{'lr':>8}  {'val loss':>8}  {'val accuracy':>12}")
for lr, loss, accuracy, _trainer in results:
    print(f"{lr:>8.0e}  {loss:>8.4f}  {accuracy:>11.2f}%")
rows = [("lr", "val_loss", "val_accuracy"), *(r[:3] for r in results)]
with open(args.out / "sweep.csv", "w", newline="") as f:
    csv.writer(f).writerows(rows)

# %%
# Choosing on the validation set
# ------------------------------
#
# The best validation accuracy wins, the lower validation loss breaking a tie.

best_lr, _, _, best = max(results, key=lambda r: (r[2], -r[1]))  # accuracy, then loss
best.model.save_pretrained(args.out / "best")

lrs = [r[0] for r in results]
fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
acc_ax.plot(lrs, [r[2] for r in results], marker="o")
loss_ax.plot(lrs, [r[1] for r in results], marker="o", color="C1")
for ax, title in ((acc_ax, "validation accuracy (%)"), (loss_ax, "validation loss")):
    ax.axvline(best_lr, color="C2", ls="--", lw=1, label=f"chosen: {best_lr:.0e}")
    ax.set(xscale="log", xlabel="learning rate", title=title, xticks=lrs)
    ax.set_xticklabels([f"{lr:.0e}" for lr in lrs])
    ax.minorticks_off()
acc_ax.legend()
fig.savefig(args.out / "sweep.png")

# %%
# Only the chosen model meets the test set, once:

test = load_mnist(args.data_dir, split="test")  # read only now, for the chosen model
accuracy = best.evaluate(test).accuracy
print(f"test accuracy: {accuracy:.2f}% (lr {best_lr:.0e}, chosen on val)")
