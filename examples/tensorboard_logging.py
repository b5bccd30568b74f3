"""TensorBoard: log the loss, the learning rate and the validation metrics of a run.

The ``TensorBoardLogger`` callback (built-in name ``"tensorboard"``) writes the step loss
and learning rate every ``every_n_steps`` optimizer steps, and every metric of
``state.metrics`` after each epoch. Validation runs every epoch on a set carved from the
training images with ``ImageSet.split``; the test set is used once, at the end. Needs the
``tensorboard`` package (``pip install "lenet5[tensorboard]"``).

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/tensorboard_logging.py --epochs 5
    tensorboard --logdir runs/examples/tensorboard
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet5 import TensorBoardLogger, Trainer, load_mnist

# (Not named tensorboard.py: a script of that name would shadow the tensorboard package,
# which torch.utils.tensorboard imports, since Python puts the script's folder first.)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--every", type=int, default=50, help="steps between two step points")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/tensorboard"))
    args = parser.parse_args()

    data = load_mnist(args.data_dir).subset(slice(args.subset))
    train, val = data.split(min(5000, len(data) // 10))
    test = load_mnist(args.data_dir, split="test")
    logger = TensorBoardLogger(log_dir=args.out, every_n_steps=args.every)
    trainer = Trainer(epochs=args.epochs, val_every=1, callbacks=[logger])
    trainer.fit(train, val)
    print(f"view the curves with: tensorboard --logdir {logger.log_dir}")
    print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")


if __name__ == "__main__":
    main()
