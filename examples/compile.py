"""torch.compile: train LeNet-5 with a compiled forward pass, and time each epoch.

``compile=True`` runs the training forward pass through ``torch.compile``. The first epoch
includes the compilation (tens of seconds on a CPU, which needs a C++ compiler), so the
time to compare is that of the later epochs. The model you hold, its state dict and
``save_pretrained`` stay those of the uncompiled module.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/compile.py --epochs 3
    python examples/compile.py --epochs 3 --no-compile    # the same, uncompiled
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet5 import Trainer, load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/compile"))
    args = parser.parse_args()

    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    trainer = Trainer(epochs=args.epochs, compile=args.compile)
    state = trainer.fit(train)
    for epoch, metrics in enumerate(state.history, 1):
        note = " (includes the compilation)" if epoch == 1 and args.compile else ""
        print(f"epoch {epoch}: {metrics['epoch_seconds']:.2f} s{note}")
    trainer.model.save_pretrained(args.out)  # plain parameter names, no "_orig_mod."
    print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")


if __name__ == "__main__":
    main()
