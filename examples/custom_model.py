"""Your own model: any ``nn.Module`` from images to logits trains with the same Trainer.

``SmallCNN`` is not LeNet-5: two 3x3 convolutions with ReLU and max pooling, flattened with
``x.view(x.size(0), -1)`` before a linear layer, as textbook models are. The Trainer takes
it as it is (``Trainer(model)``, typed ``Trainer[SmallCNN]``), with every option and
callback, and ``trainer.predict`` returns its logits for the test images, in order, from
which the script computes the accuracy and shows a few predictions.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/custom_model.py --epochs 3
    python examples/custom_model.py --epochs 3 --width 32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from lenet5 import Trainer, load_mnist


class SmallCNN(nn.Module):
    """conv 3x3 -> ReLU -> max pool, twice, then a linear layer on the flattened features."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, width, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 2 * width, 7, 7)
        return self.fc(x.view(x.size(0), -1))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/custom_model"))
    args = parser.parse_args()

    torch.manual_seed(0)  # the Trainer seeds the fit, not the initialisation of your model
    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    trainer = Trainer(SmallCNN(args.width), epochs=args.epochs)
    trainer.fit(train)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(trainer.model.state_dict(), args.out / "model.safetensors")

    logits = trainer.predict(test)  # (10000, 10) float32 on the CPU, in the test set's order
    probabilities, predicted = logits.softmax(dim=1).max(dim=1)
    for i in range(5):
        label, guess, p = int(test.labels[i]), int(predicted[i]), float(probabilities[i])
        print(f"test image {i}: label {label}, predicted {guess} ({100 * p:.1f}%)")
    accuracy = 100.0 * float((predicted == test.labels).float().mean())
    print(f"test accuracy: {accuracy:.2f}%")


if __name__ == "__main__":
    main()
