"""
Gradient clipping
=================

``grad_clip_norm`` clips the gradients' total 2-norm before every optimizer step. A
callback in ``on_before_optimizer_step``, which runs once per optimizer step with the
gradients in place just before the clipping, sees them unclipped: this one records each
step's norm, as a device tensor so that no step waits for it, and puts the epoch's mean
and maximum into ``state.metrics``.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/grad_clipping.py --epochs 5
   $ python examples/research/grad_clipping.py --epochs 5 --clip 0.25 --lr 3e-3

This page was built with ``--subset 1024 --epochs 2 --clip 1.0``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from lenet5 import Callback, Trainer, TrainState, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--clip", type=float, default=1.0, help="the largest gradient norm")
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--out", type=Path, default=Path("runs/examples/grad_clipping"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The callback
# ------------


class GradNorm(Callback):
    """Record the total 2-norm of the gradients before every optimizer step."""

    def __init__(self) -> None:
        self.norms: list[torch.Tensor] = []  # one 0-d tensor per optimizer step
        self.first_of_epoch = 0

    def on_epoch_start(self, state: TrainState) -> None:
        self.first_of_epoch = len(self.norms)

    def on_before_optimizer_step(self, state: TrainState) -> None:
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        self.norms.append(
            torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        )

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = torch.stack(self.norms[self.first_of_epoch :])
        state.metrics["grad_norm_mean"] = float(epoch.mean())
        state.metrics["grad_norm_max"] = float(epoch.max())


# %%
# Training
# --------
#
# ``grad_clip_norm`` is a Trainer option; the callback goes into ``callbacks``.

train = load_mnist(args.data_dir).subset(slice(args.subset))
grad_norm = GradNorm()
trainer = Trainer(
    epochs=args.epochs, lr=args.lr, grad_clip_norm=args.clip, callbacks=[grad_norm]
)
state = trainer.fit(train)
trainer.model.save_pretrained(args.out)
for epoch, m in enumerate(state.history, 1):
    mean, largest = m["grad_norm_mean"], m["grad_norm_max"]
    print(f"epoch {epoch}: gradient norm {mean:.3f} (max {largest:.3f})")

norms = torch.stack(grad_norm.norms).cpu()
clipped = norms > args.clip
share = 100.0 * float(clipped.float().mean())
print(f"{len(norms)} steps, clipped to {args.clip} in {share:.1f}% of them")

# %%
# The norm of every step, before the clipping. The steps above the line had their
# gradients scaled down to the norm ``--clip``; the others were left as they were. In
# this page's short run the norm grows over the first steps, as the network moves away
# from its initial weights, and then hovers around the threshold.

steps = torch.arange(1, len(norms) + 1)
fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
ax.plot(steps, norms, color="C0", lw=1, label="gradient norm")
ax.scatter(steps[clipped], norms[clipped], color="C3", s=12, zorder=3, label="clipped")
label = f"grad_clip_norm = {args.clip:g}"
ax.axhline(args.clip, color="C3", ls="--", lw=1, label=label)
for epoch in range(1, len(state.history)):
    ax.axvline(epoch * state.steps_per_epoch + 0.5, color="0.7", lw=0.8)
ax.set(xlabel="optimizer step (grey lines: epoch ends)", ylabel="total 2-norm")
ax.legend(loc="lower right")
fig.savefig(args.out / "gradient_norms.png")

# %%
# The test set, read once, for the result line:

test = load_mnist(args.data_dir, split="test")
print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")
