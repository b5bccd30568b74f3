"""An auxiliary loss: penalise large logits on top of the cross-entropy.

A ``LogitPenalty`` callback adds ``weight * mean(logits ** 2)`` to ``state.loss`` in
``on_before_backward``, after the forward pass and the loss, before the backward pass
("logit squeezing": the network reaches the same decisions with smaller, less
overconfident logits). Any term with a graph can be added the same way: a weight penalty,
an orthogonality term, a loss on a hidden layer read with a forward hook. The epoch's mean
penalty goes into ``state.metrics`` (and so into ``state.history``).

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/auxiliary_loss.py --epochs 5
    python examples/auxiliary_loss.py --epochs 5 --weight 0    # the same run without it
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lenet5 import Callback, Trainer, TrainState, load_mnist


class LogitPenalty(Callback):
    """Add ``weight * mean(logits ** 2)`` to the loss that is back-propagated."""

    def __init__(self, weight: float = 1e-3) -> None:
        self.weight = weight
        self.total, self.batches = torch.zeros(()), 0

    def on_epoch_start(self, state: TrainState) -> None:
        self.total, self.batches = torch.zeros((), device=state.device), 0

    def on_before_backward(self, state: TrainState) -> None:
        assert state.logits is not None
        assert state.loss is not None
        penalty = state.logits.float().pow(2).mean()
        state.loss = state.loss + self.weight * penalty
        self.total += penalty.detach()  # summed on the device: no synchronisation per step
        self.batches += 1

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["logit_penalty"] = float(self.total) / max(self.batches, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--weight", type=float, default=1e-3, help="weight of the penalty")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/auxiliary_loss"))
    args = parser.parse_args()

    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    trainer = Trainer(epochs=args.epochs, callbacks=[LogitPenalty(args.weight)])
    state = trainer.fit(train)
    trainer.model.save_pretrained(args.out)
    # The reported loss is what was back-propagated: the cross-entropy plus the penalty.
    for epoch, m in enumerate(state.history, 1):
        print(f"epoch {epoch}: loss {m['loss']:.4f}, mean logit^2 {m['logit_penalty']:.2f}")
    logits = trainer.predict(test)
    print(f"mean logit^2 on the test set: {logits.pow(2).mean():.2f}")
    print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")


if __name__ == "__main__":
    main()
