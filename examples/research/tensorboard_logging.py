"""
TensorBoard
===========

The :class:`~lenet5.training.callbacks.TensorBoardLogger` callback (built-in name
``"tensorboard"``) writes the step loss and learning rate every ``every_n_steps``
optimizer steps, and every metric of ``state.metrics`` after each epoch. Here the run
validates after every epoch on images carved from the training set with
:meth:`ImageSet.split <lenet5.data.ImageSet.split>`, so the curves never look at the
test set, which is read once, at the end. It needs the ``tensorboard`` package (``pip
install "lenet5[tensorboard]"``).

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``), then look at the curves:

.. code-block:: console

   $ python examples/research/tensorboard_logging.py --epochs 5
   $ tensorboard --logdir runs/examples/tensorboard

This page was built with ``--subset 1536 --epochs 3 --every 8``, and draws the curves
from the event files with matplotlib instead.

(The script is not named ``tensorboard.py``: a script of that name would shadow the
``tensorboard`` package, since Python puts the script's folder first on ``sys.path``.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lenet5 import TensorBoardLogger, Trainer, load_mnist

# sphinx_gallery_start_ignore
# tensorboard has no type annotations (mypy --strict checks these examples):
# mypy: disable-error-code="import-untyped"
# sphinx_gallery_end_ignore

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--every", type=int, default=50, help="steps between points")
parser.add_argument("--out", type=Path, default=Path("runs/examples/tensorboard"))
args = parser.parse_args()

# %%
# Training, logged
# ----------------
#
# The logger is a callback like any other; ``val_every=1`` validates after every epoch.

data = load_mnist(args.data_dir).subset(slice(args.subset))
train, val = data.split(min(5000, len(data) // 10))
logger = TensorBoardLogger(log_dir=args.out, every_n_steps=args.every)
trainer = Trainer(epochs=args.epochs, val_every=1, callbacks=[logger])
trainer.fit(train, val)
print(f"view the curves with: tensorboard --logdir {logger.log_dir}")

# %%
# What the event files hold
# -------------------------
#
# TensorBoard's own reader lists the scalar tags: ``step/...`` every ``--every`` steps,
# ``epoch/...`` once per epoch.

events = EventAccumulator(str(logger.log_dir), size_guidance={"scalars": 0})
events.Reload()
tags: list[str] = sorted(events.Tags()["scalars"])
print(tags)

# %%
# The same curves TensorBoard shows, drawn from those files: the step loss, and the
# training and validation loss and accuracy of each epoch.


def curve(tag: str) -> tuple[list[int], list[float]]:
    """The steps (or epochs) and the values logged under ``tag``."""
    points = events.Scalars(tag)
    return [p.step for p in points], [p.value for p in points]


fig, (step_ax, loss_ax, acc_ax) = plt.subplots(
    1, 3, figsize=(10, 3), layout="constrained"
)
step_ax.plot(*curve("step/loss"), marker=".")
step_ax.set(title=f"step/loss (every {args.every} steps)", xlabel="optimizer step")
for ax, tag in ((loss_ax, "loss"), (acc_ax, "accuracy")):
    for name in (f"epoch/{tag}", f"epoch/val_{tag}"):
        ax.plot(*curve(name), marker="o", label=name)
    ax.set(title=f"epoch {tag}", xlabel="epoch", xticks=range(1, args.epochs + 1))
    ax.legend()
fig.savefig(args.out / "curves.png")

# %%
# The test set, read once, for the result line:

test = load_mnist(args.data_dir, split="test")
print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")
