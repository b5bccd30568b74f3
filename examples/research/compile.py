"""
torch.compile
=============

``compile=True`` runs the training forward pass through :func:`torch.compile`. The first
epoch includes the compilation (on a CPU, which needs a C++ compiler for it, that takes
tens of seconds), so the epochs to compare are the later ones; ``--no-compile`` runs the
same training uncompiled. The model you hold, its state dict and ``save_pretrained``
stay those of the uncompiled module: the weights you save carry no ``_orig_mod.``
prefix.

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/research/compile.py --epochs 3
   $ python examples/research/compile.py --epochs 3 --no-compile   # uncompiled

This page was built with ``--subset 512 --epochs 3``, on the CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from lenet5 import Trainer, load_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--subset", type=int, metavar="N", help="the first N images only")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
parser.add_argument("--out", type=Path, default=Path("runs/examples/compile"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# sphinx_gallery_start_ignore
# Quiet torch's note that it found no CUDA runtime while it compiles for the CPU.
import logging  # noqa: E402

logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
# sphinx_gallery_end_ignore

# %%
# Training
# --------
#
# ``compile`` is a Trainer option like any other; the Timer callback, one of the
# defaults, records each epoch's ``epoch_seconds``.

train = load_mnist(args.data_dir).subset(slice(args.subset))
trainer = Trainer(epochs=args.epochs, compile=args.compile)
state = trainer.fit(train)
seconds = [m["epoch_seconds"] for m in state.history]
for epoch, s in enumerate(seconds, 1):
    note = " (includes the compilation)" if epoch == 1 and args.compile else ""
    print(f"epoch {epoch}: {s:.2f} s{note}")
trainer.model.save_pretrained(args.out)
names = sorted(trainer.model.state_dict())
print(f"saved {len(names)} tensors, e.g. {names[0]!r}: no '_orig_mod.' prefix")

# %%
# The time of each epoch, on a log scale: the first one is mostly compilation.

fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
epochs = list(range(1, len(seconds) + 1))
colors = ["C3" if args.compile and e == 1 else "C0" for e in epochs]
bars = ax.bar(epochs, seconds, color=colors)
ax.bar_label(bars, fmt="%.2f s")
ax.set(xlabel="epoch", xticks=epochs, ylabel="seconds", yscale="log")
ax.yaxis.set_major_formatter("{x:g}")
ax.set_title("compiled" if args.compile else "not compiled")
ax.margins(y=0.2)
fig.savefig(args.out / "epoch_times.png")

# %%
# The test set, read once, for the result line:

test = load_mnist(args.data_dir, split="test")
print(f"test accuracy: {trainer.evaluate(test).accuracy:.2f}%")
