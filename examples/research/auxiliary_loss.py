"""
An auxiliary loss
=================

A callback can add any term to the loss that is back-propagated. ``on_before_backward``
runs after the forward pass and ``loss_fn``, before the backward pass, and may replace
``state.loss`` by any scalar tensor with a graph. This one adds a penalty on the squared
logits, ``weight * mean(logits ** 2)`` ("logit squeezing": the network reaches the same
decisions with smaller, less overconfident logits). A weight penalty, an orthogonality
term or a loss on a hidden layer read with a forward hook go the same way.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/auxiliary_loss.py --epochs 5
   $ python examples/research/auxiliary_loss.py --epochs 5 --weight 0    # without it

This page was built with ``--subset 1024 --epochs 3 --weight 0.05``, a weight large
enough to show in so short a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from lenet5 import Callback, LeNet5, Trainer, TrainState, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--weight", type=float, default=1e-3, help="weight of the penalty")
parser.add_argument("--out", type=Path, default=Path("runs/examples/auxiliary_loss"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The callback
# ------------
#
# The penalty of each batch is summed on the device, so that no step waits for it, and
# the epoch's mean goes into ``state.metrics`` (and so into ``state.history``). The
# epoch's ``loss`` metric is what was back-propagated, the penalty included.


class LogitPenalty(Callback):
    """Add ``weight * mean(logits ** 2)`` to the loss that is back-propagated."""

    def __init__(self, weight: float = 1e-3) -> None:
        self.weight = weight
        self.total, self.batches = torch.zeros(()), 0

    def on_epoch_start(self, state: TrainState) -> None:
        self.total, self.batches = torch.zeros((), device=state.device), 0

    def on_before_backward(self, state: TrainState) -> None:
        assert state.logits is not None
        assert state.loss is not None
        penalty = state.logits.float().pow(2).mean()
        state.loss = state.loss + self.weight * penalty
        self.total += (
            penalty.detach()
        )  # summed on the device: no synchronisation per step
        self.batches += 1

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["logit_penalty"] = float(self.total) / max(self.batches, 1)


# %%
# Training
# --------
#
# The same seeded LeNet-5 is trained twice, with the penalty and, for comparison, with a
# weight of 0 (the callback then only measures). Only the first run is saved.

train = load_mnist(args.data_dir).subset(slice(args.subset))
runs: dict[str, Trainer[LeNet5]] = {}
for weight in (args.weight, 0.0):
    trainer = Trainer(epochs=args.epochs, callbacks=[LogitPenalty(weight)])
    trainer.fit(train)
    runs[f"weight {weight:g}"] = trainer
penalised = runs[f"weight {args.weight:g}"]
penalised.model.save_pretrained(args.out)
assert penalised.state is not None
for epoch, m in enumerate(penalised.state.history, 1):
    print(f"epoch {epoch}: loss {m['loss']:.4f}, mean logit^2 {m['logit_penalty']:.2f}")

# %%
# The loss and the mean squared logit of each epoch, in both runs. The loss of the first
# run includes its penalty.

fig, (loss_ax, logit_ax) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
for label, trainer in runs.items():
    assert trainer.state is not None
    history = trainer.state.history
    epochs = list(range(1, len(history) + 1))
    loss_ax.plot(epochs, [m["loss"] for m in history], marker="o", label=label)
    logit_ax.plot(
        epochs, [m["logit_penalty"] for m in history], marker="o", label=label
    )
loss_ax.set(title="loss (back-propagated)", xlabel="epoch", xticks=epochs)
logit_ax.set(title="mean logit² (training batches)", xlabel="epoch", xticks=epochs)
logit_ax.legend()
fig.savefig(args.out / "training_curves.png")

# %%
# On the test set
# ---------------
#
# ``trainer.predict`` returns the logits of every test image, in order: their spread in
# both runs, and the test accuracies of the result line.

test = load_mnist(args.data_dir, split="test")
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
for label, trainer in runs.items():
    logits = trainer.predict(test)
    ax.hist(logits.flatten().numpy(), bins=60, histtype="step", lw=1.5, label=label)
    print(f"mean logit^2 on the test set ({label}): {logits.pow(2).mean():.2f}")
ax.set(title="the logits of the test images", xlabel="logit", ylabel="count")
ax.legend()
fig.savefig(args.out / "test_logits.png")

accuracies = ", ".join(
    f"{t.evaluate(test).accuracy:.2f}% ({label})" for label, t in runs.items()
)
print(f"test accuracy: {accuracies}")

# sphinx_gallery_thumbnail_number = 2
