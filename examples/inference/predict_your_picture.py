"""
Predicting on your own picture
==============================

The bundled weights know MNIST digits: white strokes on a black 28x28 image, centred the
way MNIST's were. A photo or a drawing looks nothing like that, so
:class:`~lenet5.predict.Predictor` first turns each picture into such an image with
:func:`lenet5.preprocess.to_mnist` (greyscale, inverted when the background is light,
cropped to the digit, scaled into 20x20 and centred by its centre of mass, as MNIST was
made; see :doc:`/predict`), then classifies it. Here two pictures are made with Pillow,
a ballpoint 7 photographed on paper and a chalk 3 on a blackboard, and classified.

Run it from the repository root, on the pictures it draws or on your own:

.. code-block:: console

   $ python examples/inference/predict_your_picture.py
   $ python examples/inference/predict_your_picture.py --picture my_digit.png photo.jpg

The same from the command line is ``lenet5 predict my_digit.png``. This page was built
without flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from lenet5.predict import Predictor
from lenet5.preprocess import to_mnist

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--picture", type=Path, nargs="+", help="default: two drawn")
parser.add_argument("--weights", default="DEFAULT", help="name, folder or file")
parser.add_argument("--out", type=Path, default=Path("runs/examples/predict"))
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

# %%
# Two pictures
# ------------
#
# The first imitates a phone photo of a digit written with a blue ballpoint pen: cream
# paper, the strokes slightly blurred, a little sensor noise, a tilt and JPEG
# compression. The second is light on dark, chalk on a green-grey board, which
# ``to_mnist`` recognises from the background and does not invert.
#
# Photograph your digits in even light: ``to_mnist`` takes the background level from the
# picture's border and crops to every pixel that stands out from it by more than a tenth
# of the strongest stroke, so a shadow, a dark corner or heavy noise widens the crop and
# shrinks the digit.


def ballpoint_seven(path: Path) -> Path:
    """A blue 7 on cream paper, blurred, noisy, tilted and compressed: a 'photo'."""
    width, height = 480, 360
    margin = 80  # cut off after the tilt, which leaves empty corners
    paper = Image.new("RGB", (width + 2 * margin, height + 2 * margin), (246, 236, 212))
    draw = ImageDraw.Draw(paper)
    ink, pen = (35, 50, 140), 13
    stroke = [(270, 175), (330, 168), (385, 164), (372, 200), (342, 265), (312, 350)]
    draw.line(stroke, fill=ink, width=pen, joint="curve")
    draw.line([(310, 260), (365, 256)], fill=ink, width=pen - 2)  # the crossbar
    for x, y in (stroke[0], stroke[-1]):
        draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=ink)
    tilted = paper.rotate(-6, resample=Image.Resampling.BICUBIC)
    photo = tilted.crop((margin, margin, margin + width, margin + height))
    photo = photo.filter(ImageFilter.GaussianBlur(1.6))
    noise = Image.effect_noise((width, height), 3).convert("RGB")
    photo = ImageChops.add(photo, noise, scale=1.0, offset=-128)
    photo.save(path, quality=85)
    return path


def chalk_three(path: Path) -> Path:
    """A rough white 3 on a dark green-grey board: light on dark."""
    board = Image.new("RGB", (300, 320), (38, 58, 48))
    draw = ImageDraw.Draw(board)
    for dx, dy in ((0, 0), (3, 2), (-2, 3)):  # three passes of the chalk
        box_top = (95 + dx, 45 + dy, 215 + dx, 155 + dy)
        box_bottom = (85 + dx, 150 + dy, 225 + dx, 275 + dy)
        draw.arc(box_top, start=-165, end=95, fill=(225, 228, 220), width=12)
        draw.arc(box_bottom, start=-95, end=160, fill=(225, 228, 220), width=12)
    grain = Image.effect_noise(board.size, 40).convert("RGB")
    board = ImageChops.multiply(board, grain.point(lambda v: min(255, 150 + v)))
    board.save(path)
    return path


pictures: list[Path] = args.picture or [
    ballpoint_seven(args.out / "seven.jpg"),
    chalk_three(args.out / "three.png"),
]

# %%
# Classifying them
# ----------------
#
# :class:`~lenet5.predict.Predictor` loads the weights once (``DEFAULT`` is
# ``mnist-v3``) and takes file paths, PIL images or tensors. ``top_k=10`` keeps every
# class, in order of probability. On the CPU it runs the model through ONNX Runtime when
# the ``onnx`` extra is installed (``predictor.backend``).

predictor = Predictor(args.weights)
predictions = predictor.predict(pictures, top_k=10)
print(f"weights {predictor.weights.name}, backend {predictor.backend}")

# %%
# What the model sees
# -------------------
#
# Each picture, the 28x28 image ``to_mnist`` makes of it (what the model classifies),
# and the probability of every class. ``DEFAULT`` was trained with label smoothing 0.05,
# which aims the right class at a probability of 0.955, so a clear digit shows about
# 95.5% and never 100%.

rows = len(pictures)
fig, axes = plt.subplots(rows, 3, figsize=(9, 2.7 * rows), layout="constrained")
for (picture_ax, digit_ax, bar_ax), path, p in zip(
    axes.reshape(rows, 3), pictures, predictions, strict=True
):
    picture_ax.imshow(Image.open(path).convert("RGB"))
    picture_ax.set_title(path.name)
    digit_ax.imshow(to_mnist(path), cmap="gray", vmin=0, vmax=255)
    digit_ax.set_title("to_mnist: 28x28")
    for ax in (picture_ax, digit_ax):
        ax.set_xticks([])
        ax.set_yticks([])
    probability = {c.index: c.probability for c in p.top_k}
    classes = range(len(predictor.classes))
    colors = ["C2" if c == p.prediction else "C0" for c in classes]
    bar_ax.bar(classes, [probability[c] for c in classes], color=colors)
    bar_ax.set(xticks=list(classes), xticklabels=predictor.classes, ylim=(0, 1.05))
    bar_ax.set_ylabel("probability")
    bar_ax.set_title(f"predicted {p.label} ({100 * p.probability:.1f}%)")
fig.savefig(args.out / "predictions.png")

# %%
# The result, as ``lenet5 predict`` prints it:

for path, p in zip(pictures, predictions, strict=True):
    top = ", ".join(f"{c.label} {100 * c.probability:.2f}%" for c in p.top_k[:3])
    print(f"{path.name}: {p.label} ({100 * p.probability:.2f}%)   top-3: {top}")

# sphinx_gallery_thumbnail_number = 1
