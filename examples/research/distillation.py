"""
Knowledge distillation
======================

A teacher, here a CNN four times as wide as LeNet-5 trained briefly with the same
Trainer, teaches the student LeNet-5 through its probabilities softened at a temperature
``T`` (Hinton et al., 2015). The library's
:class:`~lenet5.training.distill.Distillation` callback runs the teacher on the very
batch the student sees, ``state.inputs`` in ``on_batch_start``, and puts its
probabilities in ``state.targets``; its ``loss`` method, given to the Trainer as
``loss_fn``, mixes the KL divergence to them (times ``T**2``, weight ``alpha``) with the
cross-entropy to the labels (weight ``1 - alpha``).

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/distillation.py --epochs 5 --temperature 4 --alpha 0.5

The teacher is saved to ``--out``, from where the next run loads it (delete
``teacher.safetensors`` to train a new one). This page was built with ``--subset 1024
--epochs 2 --teacher-epochs 2 --temperature 4 --alpha 0.5``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lenet5 import Distillation, Trainer, load_mnist, normalize

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=5, help="epochs of the student")
parser.add_argument("--teacher-epochs", type=int, default=2)
parser.add_argument("--temperature", type=float, default=2.0)
parser.add_argument("--alpha", type=float, default=0.9, help="weight of the KL term")
parser.add_argument("--out", type=Path, default=Path("runs/examples/distillation"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The teacher
# -----------
#
# Any ``nn.Module`` from ``(N, 1, 28, 28)`` images to logits can teach. This one has
# 3x3 convolutions with 32 and 64 channels, ReLU and max pooling. The Trainer seeds its
# fits and the LeNet-5 it builds, not a model you pass it, so torch is seeded first.


def wide_cnn() -> nn.Module:
    """The teacher: 3x3 convolutions with 32 and 64 channels, ReLU and max pooling."""
    layers = [nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


torch.manual_seed(0)
train = load_mnist(args.data_dir).subset(slice(args.subset))
teacher_file = args.out / "teacher.safetensors"
teacher = Trainer(wide_cnn(), epochs=args.teacher_epochs)
if teacher_file.is_file():  # delete it to train a new teacher
    teacher.model.load_state_dict(load_file(teacher_file))
else:
    teacher.fit(train)
    save_file(teacher.model.state_dict(), teacher_file)

# %%
# What the teacher knows
# ----------------------
#
# The labels say only which digit an image is; the teacher's probabilities also say
# which other digits it resembles. The temperature divides the logits before the softmax
# and brings those small probabilities up, where the student can learn from them. The
# teacher's probabilities for three training images, at ``T = 1`` and at the temperature
# of the run:

images = train.images[:3]
with torch.no_grad():
    logits = teacher.model.eval()(normalize(images))
fig, axes = plt.subplots(
    2, 3, figsize=(9, 4), height_ratios=[1, 1.3], layout="constrained"
)
for i in range(3):
    axes[0, i].imshow(images[i], cmap="gray")
    axes[0, i].set_title(f"label {int(train.labels[i])}")
    axes[0, i].axis("off")
    for offset, t in ((-0.2, 1.0), (0.2, args.temperature)):
        p = (logits[i] / t).softmax(dim=0)
        axes[1, i].bar(torch.arange(10) + offset, p, width=0.4, label=f"T = {t:g}")
    axes[1, i].set(xticks=range(10), xlabel="class", ylim=(0, 1))
axes[1, 0].set_ylabel("teacher's probability")
axes[1, 0].legend()
fig.savefig(args.out / "soft_targets.png")

# %%
# Distilling
# ----------
#
# One object is both the callback (it sets the targets) and the loss (it mixes the two
# terms). The student is the Trainer's own LeNet-5; its training ``accuracy`` counts
# against the data's labels (``state.labels``), not the teacher's most likely class.

distil = Distillation(teacher.model, args.temperature, args.alpha)
student = Trainer(epochs=args.epochs, loss_fn=distil.loss, callbacks=[distil])
student.fit(train)
student.model.save_pretrained(args.out / "student")

# %%
# For comparison, the same LeNet-5 (same seed, same batches) trained on the labels
# alone:

alone = Trainer(epochs=args.epochs, verbose=False)
alone.fit(train)

# %%
# The test set, read once, for the result line and the figure. A run as short as this
# page's says little about distillation (a student that has taken a few dozen steps
# may well trail the LeNet-5 trained on the labels alone); run the command above, on
# the whole training set, for a comparison that means something.

test = load_mnist(args.data_dir, split="test")
runs: dict[str, Trainer[Any]] = {"teacher": teacher, "student": student, "alone": alone}
accuracy = {name: trainer.evaluate(test).accuracy for name, trainer in runs.items()}

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
labels = ["teacher", "student\n(distilled)", "LeNet-5\n(labels only)"]
bars = ax.bar(labels, list(accuracy.values()), color=["C2", "C0", "C7"])
ax.bar_label(bars, fmt="%.2f%%")
ax.set(ylabel="test accuracy (%)", ylim=(0, 105))
fig.savefig(args.out / "accuracies.png")

print(f"teacher test accuracy: {accuracy['teacher']:.2f}%")
print(
    f"test accuracy: {accuracy['student']:.2f}% (the student LeNet-5), "
    f"{accuracy['alone']:.2f}% (LeNet-5 on the labels alone)"
)

# sphinx_gallery_thumbnail_number = 1
