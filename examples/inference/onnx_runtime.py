"""
Export to ONNX, run with ONNX Runtime
=====================================

:func:`lenet5.export.export_onnx` writes a model as an ONNX file (opset 18, input
``input``, output ``logits``, a dynamic batch dimension), checked against the eager
model before the file is put in place. Any ONNX runtime runs it without ``lenet5`` or
PyTorch; here ONNX Runtime does, and its outputs and speed are compared with PyTorch's.
:class:`lenet5.runtime.OnnxRuntimeModel` is the same in memory, called like the model.
Both need the ``onnx`` extra (``pip install "lenet5[onnx]"``).

Run it from the repository root (the MNIST files in ``--data-dir``, else in
``$LENET5_DATA_DIR``):

.. code-block:: console

   $ python examples/inference/onnx_runtime.py
   $ python examples/inference/onnx_runtime.py --weights mnist-v1 --repeats 500

The same export from the command line is ``lenet5 export --format onnx --out
lenet5.onnx``. This page was built with ``--repeats 50``, on the documentation build's
CPU: the times depend on the machine and on what else it runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import onnxruntime as ort
import torch

from lenet5 import LeNet5, load_mnist, normalize
from lenet5.export import export_onnx
from lenet5.runtime import OnnxRuntimeModel

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
parser.add_argument("--weights", default="DEFAULT", help="name, folder or file")
parser.add_argument("--repeats", type=int, default=200, help="timed calls each")
parser.add_argument("--out", type=Path, default=Path("runs/examples/onnx_runtime"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# Export
# ------
#
# The exported graph takes the *normalised* input, ``(N, 1, 28, 28)`` floats; the
# normalisation stays with the caller (``model.weights.transforms()`` for pictures,
# :func:`lenet5.normalize` for MNIST images).

model = LeNet5.from_pretrained(args.weights)  # in evaluation mode
onnx_file = export_onnx(model, args.out / "lenet5.onnx")
print(f"wrote {onnx_file.name}: {onnx_file.stat().st_size:,} bytes")

# %%
# Running the file with ONNX Runtime
# ----------------------------------
#
# An ``InferenceSession`` on the CPU, with as many threads as PyTorch uses, for a fair
# comparison below. Its input and output are named in the file; the batch dimension is
# symbolic, so any batch size runs.

threads = torch.get_num_threads()
options = ort.SessionOptions()
options.intra_op_num_threads = threads
cpu = ["CPUExecutionProvider"]
session = ort.InferenceSession(str(onnx_file), options, providers=cpu)
(onnx_input,) = session.get_inputs()
print(onnx_input.name, onnx_input.shape, "->", [o.name for o in session.get_outputs()])

test = load_mnist(args.data_dir, split="test")
x = normalize(test.images)  # (10000, 1, 28, 28) float32
onnx_logits = torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])
with torch.inference_mode():
    torch_logits = model(x)

difference = (onnx_logits - torch_logits).abs().max()
same = (onnx_logits.argmax(dim=1) == torch_logits.argmax(dim=1)).sum()
print(f"largest logit difference: {difference:.1e}")
print(f"same class for {same} of {len(x)} images")

# %%
# Timing
# ------
#
# The median time of ``--repeats`` calls, per image, for one image and for batches of
# 64 and 1,024: PyTorch's eager model under :func:`torch.inference_mode`, the ONNX
# Runtime session above, and :class:`~lenet5.runtime.OnnxRuntimeModel`, which builds the
# same graph in memory from the model (no file) and is called like the model. For one
# image PyTorch spends most of its time in the overhead of each operator, which ONNX
# Runtime avoids.


def pytorch(batch: torch.Tensor) -> object:
    with torch.inference_mode():
        return model(batch)


def onnx_session(batch: torch.Tensor) -> object:
    return session.run(["logits"], {"input": batch.numpy()})


def microseconds_per_image(run: Callable[[torch.Tensor], object], size: int) -> float:
    """The median time of ``--repeats`` calls on ``size`` images, after two warm-ups."""
    batch = x[:size].contiguous()
    run(batch)
    run(batch)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return 1e6 * sorted(times)[len(times) // 2] / size


backends: dict[str, Callable[[torch.Tensor], object]] = {
    "PyTorch (eager)": pytorch,
    "ONNX Runtime (session)": onnx_session,
    "OnnxRuntimeModel": OnnxRuntimeModel(model, threads=threads),
}
sizes = (1, 64, 1024)
micros = {
    name: [microseconds_per_image(run, size) for size in sizes]
    for name, run in backends.items()
}
print(f"{'microseconds per image':<24}" + "".join(f"{f'batch {s}':>12}" for s in sizes))
for name, values in micros.items():
    print(f"{name:<24}" + "".join(f"{v:>12.1f}" for v in values))

# %%
# Per image (shorter is faster):

fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
width = 0.27
for i, (name, values) in enumerate(micros.items()):
    positions = [j + (i - 1) * width for j in range(len(sizes))]
    bars = ax.bar(positions, values, width, label=name)
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
ax.set_xticks(range(len(sizes)), [f"batch {s}" for s in sizes])
plural = "s" if threads > 1 else ""
ax.set(ylabel="µs per image", title=f"on the CPU, {threads} thread{plural} each")
ax.margins(y=0.1)
ax.legend()
fig.savefig(args.out / "timing.png")

# %%
# Accuracy
# --------
#
# Both backends classify the test set alike; the result line:


def accuracy(logits: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(dim=1) == test.labels).float().mean())


pytorch_acc, onnx_acc = accuracy(torch_logits), accuracy(onnx_logits)
print(f"test accuracy: {pytorch_acc:.2f}% (PyTorch), {onnx_acc:.2f}% (ONNX Runtime)")
