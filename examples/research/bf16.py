"""
bfloat16 mixed precision
========================

``precision="bf16-mixed"`` runs the forward pass and the loss under
:func:`torch.autocast` to bfloat16, while the weights, the gradients and the optimizer
stay float32. This example trains the same seeded LeNet-5 in both precisions and
compares the test accuracy and the time of the epochs (the ``epoch_seconds`` metric of
the :class:`~lenet5.training.callbacks.Timer`). On the CPU it is not faster: on the
project's 2-core machine an epoch of 10,000 images at batch 128 took 0.78-0.83 s in
float32 and 0.88-0.97 s in bf16-mixed, and the short run of this page (1,024 images,
batch 32) shows bf16-mixed slower still. On a GPU (``--device cuda``) it is the usual
choice.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/bf16.py --epochs 3
   $ python examples/research/bf16.py --epochs 3 --device cuda

This page was built with ``--subset 1024 --epochs 2``, on the CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from lenet5 import ImageSet, Trainer, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--device", default="cpu")
parser.add_argument("--out", type=Path, default=Path("runs/examples/bf16"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# One run per precision
# ---------------------
#
# Everything but ``precision`` is the same, the seed included, so the two runs start
# from the same weights and see the same batches. The time counted is that of the epochs
# (``epoch_seconds``), not the set-up of the fit.


def train_and_test(
    precision: str, train: ImageSet, test: ImageSet, epochs: int, device: str, out: Path
) -> tuple[float, float]:
    """Train a LeNet-5 at ``precision``: its test accuracy and its epochs' seconds."""
    trainer = Trainer(epochs=epochs, precision=precision, device=device, verbose=False)
    state = trainer.fit(train)
    trainer.model.save_pretrained(out / precision)
    seconds = sum(
        m["epoch_seconds"] for m in state.history
    )  # the epochs, not the set-up
    return trainer.evaluate(test).accuracy, seconds


train = load_mnist(args.data_dir).subset(slice(args.subset))
test = load_mnist(args.data_dir, split="test")
results = {
    precision: train_and_test(
        precision, train, test, args.epochs, args.device, args.out
    )
    for precision in ("32", "bf16-mixed")
}

# %%
# The comparison
# --------------
#
# On so short a run both the times and the accuracies are noisy; the accuracies differ
# by the rounding of bfloat16, whose 8-bit significand keeps two to three decimal
# digits.

print(f"{'precision':<12} {'test accuracy':>13} {'training time':>14}")
for precision, (accuracy, seconds) in results.items():
    print(f"{precision:<12} {accuracy:>12.2f}% {seconds:>12.1f} s")

names = [f"{p} (float32)" if p == "32" else p for p in results]
fig, (time_ax, acc_ax) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
bars = time_ax.bar(names, [s for _, s in results.values()], color=["C0", "C1"])
time_ax.bar_label(bars, fmt="%.2f s")
time_ax.set(title=f"time of {args.epochs} epochs ({args.device})", ylabel="seconds")
time_ax.margins(y=0.15)
bars = acc_ax.bar(names, [a for a, _ in results.values()], color=["C0", "C1"])
acc_ax.bar_label(bars, fmt="%.2f%%")
acc_ax.set(title="test accuracy", ylabel="%", ylim=(0, 105))
fig.savefig(args.out / "precisions.png")

both = ", ".join(f"{acc:.2f}% ({precision})" for precision, (acc, _) in results.items())
print(f"test accuracy: {both}")
