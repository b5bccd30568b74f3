"""Knowledge distillation (Hinton et al., 2015): a wider CNN teaches LeNet-5.

A teacher four times as wide as LeNet-5 is trained briefly (or loaded from --out). The
library's ``Distillation`` callback runs it on ``state.inputs`` in ``on_batch_start`` and
sets ``state.targets`` to its probabilities at temperature T; its ``loss`` (the student's
``loss_fn``) mixes their KL divergence, times T^2, with the cross-entropy to the labels.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/distillation.py --epochs 5 --temperature 4 --alpha 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lenet5 import Distillation, Trainer, load_mnist


def wide_cnn() -> nn.Module:
    """The teacher: 3x3 convolutions with 32 and 64 channels, ReLU and max pooling."""
    layers = [nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the student")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.9, help="weight of the KL term")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/distillation"))
    args = parser.parse_args()

    torch.manual_seed(0)  # the Trainer seeds its fits and its LeNet-5, not the teacher
    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    teacher_file = args.out / "teacher.safetensors"
    teacher = Trainer(wide_cnn(), epochs=args.teacher_epochs)
    if teacher_file.is_file():  # delete it to train a new teacher
        teacher.model.load_state_dict(load_file(teacher_file))
    else:
        teacher.fit(train)
        args.out.mkdir(parents=True, exist_ok=True)
        save_file(teacher.model.state_dict(), teacher_file)
    print(f"teacher test accuracy: {teacher.evaluate(test).accuracy:.2f}%")

    distil = Distillation(teacher.model, args.temperature, args.alpha)
    student = Trainer(epochs=args.epochs, loss_fn=distil.loss, callbacks=[distil])  # a LeNet-5
    student.fit(train)
    student.model.save_pretrained(args.out / "student")
    print(f"test accuracy: {student.evaluate(test).accuracy:.2f}% (the student LeNet-5)")


if __name__ == "__main__":
    main()
