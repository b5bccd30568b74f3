"""Gradient clipping, and a callback that logs the gradient norm it clips.

``grad_clip_norm=1.0`` clips the gradients' total 2-norm before every optimizer step. The
``GradNorm`` callback reads that norm in ``on_before_optimizer_step``, which runs with the
gradients in place just before the clipping, so it sees them unclipped. It keeps each
step's norm as a device tensor (no synchronisation per step) and puts the epoch's mean and
maximum into ``state.metrics``.

Run it (the MNIST files in --data-dir, else in $LENET5_DATA_DIR):

    python examples/grad_clipping.py --epochs 5
    python examples/grad_clipping.py --epochs 5 --clip 0.25 --lr 3e-3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lenet5 import Callback, Trainer, TrainState, load_mnist


class GradNorm(Callback):
    """Record the total 2-norm of the gradients before every optimizer step."""

    def __init__(self) -> None:
        self.norms: list[torch.Tensor] = []  # one 0-d tensor per optimizer step
        self.first_of_epoch = 0

    def on_epoch_start(self, state: TrainState) -> None:
        self.first_of_epoch = len(self.norms)

    def on_before_optimizer_step(self, state: TrainState) -> None:
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = torch.stack(self.norms[self.first_of_epoch :])
        state.metrics["grad_norm_mean"] = float(epoch.mean())
        state.metrics["grad_norm_max"] = float(epoch.max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="folder of the MNIST files (default: $LENET5_DATA_DIR)")
    parser.add_argument("--subset", type=int, metavar="N", help="train on the first N images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--clip", type=float, default=1.0, help="the largest gradient norm")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/grad_clipping"))
    args = parser.parse_args()

    train = load_mnist(args.data_dir).subset(slice(args.subset))
    test = load_mnist(args.data_dir, split="test")
    grad_norm = GradNorm()
    trainer = Trainer(
        epochs=args.epochs, lr=args.lr, grad_clip_norm=args.clip, callbacks=[grad_norm]
    )
    state = trainer.fit(train)
    trainer.model.save_pretrained(args.out)
    for epoch, m in enumerate(state.history, 1):
        print(
            f"epoch {epoch}: gradient norm {m['grad_norm_mean']:.3f} (max {m['grad_norm_max']:.3f})"
        )
    norms = torch.stack(grad_norm.norms).cpu()
    clipped = 100.0 * float((norms > args.clip).float().mean())
    print(f"{len(norms)} steps, clipped to {args.clip} in {clipped:.1f}% of them")
    print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")


if __name__ == "__main__":
    main()
