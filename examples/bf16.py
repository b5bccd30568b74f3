"""Mixed precision: the same training in float32 and under bfloat16 autocast, on the CPU.

``precision="bf16-mixed"`` runs the forward pass and the loss under ``torch.autocast`` to
bfloat16, while the weights, the gradients and the optimizer stay float32. Both runs start
from the same seed; the script prints the test accuracy and the training time of each.
On the CPU it need not be faster (on the project's 2-core test machine an epoch of 10,000
images took 0.78-0.83 s in float32 and 0.88-0.97 s in bf16-mixed); on a GPU
(``--device cuda``) it is the usual choice.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/bf16.py --epochs 3
    python examples/bf16.py --epochs 3 --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet5 import ImageSet, Trainer, load_mnist


def train_and_test(
    precision: str, train: ImageSet, test: ImageSet, epochs: int, device: str, out: Path
) -> tuple[float, float]:
    """Train a LeNet-5 at ``precision``: its test accuracy and the seconds its epochs took."""
    trainer = Trainer(epochs=epochs, precision=precision, device=device, verbose=False)
    state = trainer.fit(train)
    trainer.model.save_pretrained(out / precision)
    seconds = sum(m["epoch_seconds"] for m in state.history)  # the epochs, not the set-up
    return trainer.evaluate(test).accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/bf16"))
    args = parser.parse_args()

    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    results = {
        precision: train_and_test(precision, train, test, args.epochs, args.device, args.out)
        for precision in ("32", "bf16-mixed")
    }
    print(f"{'precision':<12} {'test accuracy':>13} {'training time':>14}")
    for precision, (accuracy, seconds) in results.items():
        print(f"{precision:<12} {accuracy:>12.2f}% {seconds:>12.1f} s")
    both = ", ".join(f"{acc:.2f}% ({precision})" for precision, (acc, _) in results.items())
    print(f"test accuracy: {both}")


if __name__ == "__main__":
    main()
