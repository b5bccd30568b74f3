"""
Mixup
=====

Mixup (Zhang et al., 2018) trains on blends of two images, ``lam * x + (1 - lam) *
x[perm]``, with their one-hot labels blended alike, ``lam ~ Beta(alpha, alpha)`` drawn
per batch. It smooths the decision boundaries between the classes. A
:class:`~lenet5.training.callbacks.Callback` does it in ``on_batch_start``, where the
Trainer has put the batch in ``state.inputs`` and ``state.targets`` and not yet run the
forward pass. The targets become probabilities ``(N, 10)``, which the Trainer's default
loss, the cross-entropy, takes as they are: nothing else changes.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/mixup.py --epochs 5
   $ python examples/research/mixup.py --subset 5000 --epochs 20 --alpha 0.4

This page was built with ``--subset 1024 --epochs 3``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from lenet5 import Callback, Trainer, TrainState, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--alpha", type=float, default=0.2, help="lam ~ Beta(alpha, alpha)")
parser.add_argument("--out", type=Path, default=Path("runs/examples/mixup"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The callback
# ------------
#
# ``on_batch_start`` may replace the batch. The permutation and ``lam`` come from
# torch's generator, which the Trainer seeds at the start of every fit, so a run is
# reproducible.


class Mixup(Callback):
    """Blend each batch with a shuffled copy of itself: inputs and one-hot targets."""

    def __init__(self, alpha: float = 0.2, num_classes: int = 10) -> None:
        self.beta = torch.distributions.Beta(alpha, alpha)
        self.num_classes = num_classes
        # For the figure below: a batch of the fit, blended about evenly if one was.
        self.example: tuple[torch.Tensor, torch.Tensor] | None = None
        self.example_lam = 0.0

    def on_batch_start(self, state: TrainState) -> None:
        x, y = state.inputs, state.targets
        assert x is not None
        assert y is not None
        if y.dim() == 1:  # class indices -> probabilities
            y = F.one_hot(y, self.num_classes).to(x.dtype)
        lam = float(
            self.beta.sample()
        )  # drawn from torch's generator, seeded by the fit
        perm = torch.randperm(x.shape[0], device=x.device)
        state.inputs = lam * x + (1 - lam) * x[perm]
        state.targets = lam * y + (1 - lam) * y[perm]
        if abs(lam - 0.5) < abs(self.example_lam - 0.5):
            self.example = (
                state.inputs[:8].to("cpu", copy=True),
                state.targets[:8].cpu(),
            )
            self.example_lam = lam


# %%
# Training
# --------
#
# The callback goes into ``callbacks``; the default loss takes the blended targets. The
# run validates after every epoch on images held out of the training set, which the
# callback never touches (it runs on training batches only); the test set is read once,
# at the end.

data = load_mnist(args.data_dir).subset(slice(args.subset))
train, val = data.split(min(5000, len(data) // 8), seed=0)
mixup = Mixup(args.alpha)
trainer = Trainer(epochs=args.epochs, val_every=1, callbacks=[mixup])
state = trainer.fit(train, val)
trainer.model.save_pretrained(args.out)  # lenet5 evaluate --weights runs/examples/mixup

# %%
# What the network saw
# --------------------
#
# With ``alpha = 0.2`` most draws of ``lam`` are close to 0 or 1: most blends are one
# digit with a faint ghost of another. Here are eight images of the batch of the fit
# whose ``lam`` came closest to 0.5, as the callback left them (normalised inputs), each
# titled with the two labels of its blend and their weights in its target (``0.62·7``:
# the label 7 with a weight of 0.62).

assert mixup.example is not None
images, targets = mixup.example
fig, axes = plt.subplots(2, 4, figsize=(6, 3.6), layout="constrained")
for ax, image, target in zip(axes.flat, images, targets, strict=True):
    weights, labels = target.topk(2)
    parts = [f"{w:.2f}·{c}" for w, c in zip(weights, labels, strict=True) if w > 0.005]
    ax.imshow(image[0], cmap="gray")
    ax.set_title(" + ".join(parts), fontsize=9)
    ax.axis("off")
fig.suptitle(f"Mixup blends, lam = {mixup.example_lam:.2f} (alpha = {args.alpha})")
fig.savefig(args.out / "mixup_blends.png")

# %%
# The training curves
# -------------------

# The training loss is measured on the blends, which are harder than plain digits, so it
# stays above the validation loss.


def series(key: str) -> list[float]:
    """The metric ``key`` of every epoch."""
    return [metrics[key] for metrics in state.history]


epochs = list(range(1, len(state.history) + 1))
fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
loss_ax.plot(epochs, series("loss"), marker="o", label="training (blends)")
loss_ax.plot(epochs, series("val_loss"), marker="o", label="validation")
loss_ax.set(title="loss", xlabel="epoch", xticks=epochs)
loss_ax.legend()
acc_ax.plot(epochs, series("val_accuracy"), marker="o", color="C1")
acc_ax.set(title="validation accuracy (%)", xlabel="epoch", xticks=epochs)
fig.savefig(args.out / "training_curves.png")

# %%
# The test set, read once, for the result line:

test = load_mnist(args.data_dir, split="test")
print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")

# sphinx_gallery_thumbnail_number = 1
