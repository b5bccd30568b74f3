"""Gradient accumulation: batches of 32, four at a time, take the steps of batches of 128.

With ``accumulate_grad_batches=4`` the optimizer steps once per four batches, on their
summed gradients, each batch's loss divided by four: the gradient of the mean loss over the
128 examples. LeNet-5 has no batch-dependent layer, and both runs draw the same shuffled
order from the same seed, so the two runs take the same steps and end with the same
weights up to rounding, while the first one holds only 32 examples in memory at a time.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/accumulation.py --epochs 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet5 import ImageSet, LeNet5, Trainer, load_mnist


def train(data: ImageSet, epochs: int, batch_size: int, accumulate: int) -> Trainer[LeNet5]:
    """Train a LeNet-5 with one optimizer step per ``accumulate`` batches of ``batch_size``."""
    trainer = Trainer(
        epochs=epochs, batch_size=batch_size, accumulate_grad_batches=accumulate, verbose=False
    )
    state = trainer.fit(data)
    seconds = sum(m["epoch_seconds"] for m in state.history)
    print(f"batch {batch_size} x {accumulate}: {state.global_step} steps in {seconds:.1f} s")
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/accumulation"))
    args = parser.parse_args()

    data = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    accumulated = train(data, args.epochs, batch_size=32, accumulate=4)
    large = train(data, args.epochs, batch_size=128, accumulate=1)
    a, b = accumulated.model.state_dict(), large.model.state_dict()
    difference = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"largest weight difference: {difference:.1e}")
    accumulated.model.save_pretrained(args.out)
    acc_a, acc_b = (t.evaluate(test).accuracy for t in (accumulated, large))
    print(f"test accuracy: {acc_a:.2f}% (batch 32 x 4 accumulated), {acc_b:.2f}% (batch 128)")


if __name__ == "__main__":
    main()
