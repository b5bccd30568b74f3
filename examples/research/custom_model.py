"""
Your own model
==============

Any ``nn.Module`` that maps ``(N, 1, 28, 28)`` images to logits trains with the same
Trainer, options and callbacks; ``Trainer(model)`` is typed by the model's class
(``Trainer[SmallCNN]`` here). ``SmallCNN`` is not LeNet-5: two 3x3 convolutions with
ReLU and max pooling, flattened with ``x.view(x.size(0), -1)`` before a linear layer, as
textbook models are (the channels-last layout, which would break that, is used for
:class:`~lenet5.model.LeNet5` only). :meth:`Trainer.predict
<lenet5.training.trainer.Trainer.predict>` returns its logits for the test images, in
order.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/custom_model.py --epochs 3
   $ python examples/research/custom_model.py --epochs 3 --width 32

This page was built with ``--subset 1024 --epochs 2``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from lenet5 import Trainer, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
parser.add_argument("--out", type=Path, default=Path("runs/examples/custom_model"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# The model
# ---------


class SmallCNN(nn.Module):
    """conv 3x3 -> ReLU -> max pool, twice, then a linear layer on the features."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, width, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 2 * width, 7, 7)
        return self.fc(x.view(x.size(0), -1))  # type: ignore[no-any-return]


# %%
# Training
# --------
#
# The Trainer seeds its fits, not the model you build, so torch is seeded before
# building it. The weights are saved as a plain safetensors file: ``save_pretrained``
# belongs to :class:`~lenet5.model.LeNet5`.

torch.manual_seed(0)  # the Trainer seeds the fit, not the initialisation of your model
train = load_mnist(args.data_dir).subset(slice(args.subset))
trainer = Trainer(SmallCNN(args.width), epochs=args.epochs)
trainer.fit(train)
save_file(trainer.model.state_dict(), args.out / "model.safetensors")

# %%
# Predictions
# -----------
#
# ``trainer.predict`` takes the test images and returns ``(10000, 10)`` float32 logits
# on the CPU, in the test set's order.

test = load_mnist(args.data_dir, split="test")
logits = trainer.predict(test)
probabilities, predicted = logits.softmax(dim=1).max(dim=1)
for i in range(5):
    label, guess, p = int(test.labels[i]), int(predicted[i]), float(probabilities[i])
    print(f"test image {i}: label {label}, predicted {guess} ({100 * p:.1f}%)")

# %%
# The first sixteen test images with the model's guess and its probability, in red where
# it is wrong:

fig, axes = plt.subplots(2, 8, figsize=(9, 2.9), layout="constrained")
for i, ax in enumerate(axes.flat):
    color = "black" if predicted[i] == test.labels[i] else "C3"
    title = f"{int(predicted[i])} ({100 * float(probabilities[i]):.0f}%)"
    ax.imshow(test.images[i], cmap="gray")
    ax.set_title(title, color=color, fontsize=10)
    ax.axis("off")
fig.suptitle("SmallCNN on the first test images: its guess (probability)")
fig.savefig(args.out / "predictions.png")

accuracy = 100.0 * float((predicted == test.labels).float().mean())
print(f"test accuracy: {accuracy:.2f}%")
