"""
Loading through torch.hub
=========================

The repository's ``hubconf.py`` has one entry point, ``lenet5``, so the model loads
through :func:`torch.hub.load` without installing the package: from GitHub with
``torch.hub.load("lenet5/lenet5", "lenet5", pretrained=True)``, or, as here, from a
checkout on disk with ``source="local"``, which reads nothing from the network.
torch.hub does not install anything: the entry point loads the package from the
checkout's ``src/lenet5`` under a private module name, ``_lenet5_hub``, so it never
clashes with a ``lenet5`` you have installed (see :doc:`/pretrained`).

Run it from anywhere in a checkout of the repository:

.. code-block:: console

   $ python examples/inference/torch_hub.py
   $ python examples/inference/torch_hub.py --repo path/to/another/checkout

This page was built without flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from lenet5 import LeNet5, load_mnist, normalize

# sphinx_gallery_start_ignore
# torch.hub.load has no type annotations (mypy --strict checks these examples):
# mypy: disable-error-code="no-untyped-call"
# sphinx_gallery_end_ignore

# %%
# Where the repository is
# -----------------------
#
# The checkout that holds this script, two folders up from it. (The path comes from
# ``sys.argv[0]``, the script, since sphinx-gallery runs the examples of these pages
# without ``__file__``.) ``--repo`` points at another one.

here = Path(sys.argv[0]).resolve().parent  # examples/inference/
parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--repo", type=Path, default=here.parents[1], help="a checkout")
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--out", type=Path, default=Path("runs/examples/torch_hub"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
print("hubconf.py found:", (args.repo / "hubconf.py").is_file())

# %%
# Loading
# -------
#
# ``pretrained=True`` loads the ``DEFAULT`` weights (``mnist-v3``), in evaluation mode;
# ``weights=`` names another set, and without either the model is untrained (with
# ``num_classes`` and ``in_channels`` as you like). The model is the package's
# ``LeNet5``, from the private copy.

model = torch.hub.load(str(args.repo), "lenet5", source="local", pretrained=True)
print(type(model).__module__, type(model).__name__, "weights:", model.weights.name)
older = torch.hub.load(str(args.repo), "lenet5", source="local", weights="mnist-v1")
untrained = torch.hub.load(str(args.repo), "lenet5", source="local", num_classes=5)
print('weights="mnist-v1":', older.weights.name)
print("num_classes=5, untrained:", untrained(torch.zeros(1, 1, 28, 28)).shape)

# %%
# The same weights as the package's own loader gives:

installed = LeNet5.from_pretrained("DEFAULT")
hub_state, own_state = model.state_dict(), installed.state_dict()
same = all(torch.equal(hub_state[k], own_state[k]) for k in own_state)
print("same tensors as LeNet5.from_pretrained('DEFAULT'):", same)

# %%
# Classifying
# -----------
#
# Inputs are ``(N, 1, 28, 28)`` floats normalised with the weights' mean and std, which
# :func:`lenet5.normalize` applies to MNIST's ``uint8`` images. The first test digits
# with the model's answers (in red where it is wrong):

test = load_mnist(args.data_dir, split="test")
with torch.inference_mode():
    logits = model(normalize(test.images, model.weights.mean, model.weights.std))
probabilities, predicted = logits.softmax(dim=1).max(dim=1)

fig, axes = plt.subplots(2, 8, figsize=(9, 2.9), layout="constrained")
for i, ax in enumerate(axes.flat):
    color = "black" if predicted[i] == test.labels[i] else "C3"
    title = f"{int(predicted[i])} ({100 * float(probabilities[i]):.1f}%)"
    ax.imshow(test.images[i], cmap="gray")
    ax.set_title(title, color=color, fontsize=10)
    ax.axis("off")
fig.suptitle("torch.hub's LeNet-5 on the first test images: its answer (probability)")
fig.savefig(args.out / "predictions.png")

# %%
# And on the whole test set, the result line (``mnist-v3`` scores 99.36%):

accuracy = 100.0 * float((predicted == test.labels).float().mean())
print(f"test accuracy: {accuracy:.2f}% (the torch.hub model)")
