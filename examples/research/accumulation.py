"""
Gradient accumulation
=====================

With ``accumulate_grad_batches=4`` the optimizer steps once per four batches, on their
summed gradients, each batch's loss divided by four: the gradient of the mean loss over
their examples. Batches of 32 accumulated four at a time thus take the steps of batches
of 128 while only 32 examples are in memory at a time. LeNet-5 has no batch-dependent
layer and both runs draw the same shuffled order from the same seed, so the two runs
below take the same steps and end with the same weights, up to rounding.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/accumulation.py --epochs 3

This page was built with ``--subset 1024 --epochs 2``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from lenet5 import ImageSet, LeNet5, Trainer, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--out", type=Path, default=Path("runs/examples/accumulation"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# Two ways to take the same steps
# -------------------------------


def train(
    data: ImageSet, epochs: int, batch_size: int, accumulate: int
) -> Trainer[LeNet5]:
    """A LeNet-5 trained with one optimizer step per ``accumulate`` batches."""
    trainer = Trainer(
        epochs=epochs,
        batch_size=batch_size,
        accumulate_grad_batches=accumulate,
        verbose=False,
    )
    state = trainer.fit(data)
    seconds = sum(m["epoch_seconds"] for m in state.history)
    steps = state.global_step
    print(f"batch {batch_size} x {accumulate}: {steps} steps in {seconds:.1f} s")
    return trainer


data = load_mnist(args.data_dir).subset(slice(args.subset))
accumulated = train(data, args.epochs, batch_size=32, accumulate=4)
large = train(data, args.epochs, batch_size=128, accumulate=1)
accumulated.model.save_pretrained(args.out)

# %%
# How far apart the weights are
# -----------------------------
#
# The largest difference between the two runs' values of each parameter tensor. It is
# rounding: float32 sums the gradients of 128 examples in another order when they come
# in four batches, and Adam, which divides by the root of the squared gradients,
# amplifies such differences a little with every step.

a, b = accumulated.model.state_dict(), large.model.state_dict()
differences = {name: float((a[name] - b[name]).abs().max()) for name in a}
print(f"largest weight difference: {max(differences.values()):.1e}")

fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
ax.bar(list(differences), [max(d, 1e-12) for d in differences.values()], color="C0")
ax.set(yscale="log", ylabel="largest |difference|", title="batch 32 x 4 vs batch 128")
plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
fig.savefig(args.out / "weight_differences.png")

# %%
# The test set, read once, for the result line:

test = load_mnist(args.data_dir, split="test")
acc_a, acc_b = (t.evaluate(test).accuracy for t in (accumulated, large))
print(
    f"test accuracy: {acc_a:.2f}% (batch 32 x 4 accumulated), {acc_b:.2f}% (batch 128)"
)
