"""Draw the picture of the documentation's first page: a drawn digit, what the model sees,
and the ten probabilities the bundled weights give.

    python scripts/index_figure.py docs/_static/figures/index.png

The digit is drawn with Pillow (no data needed), so the figure is the same on every machine
with the same torch and Pillow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from lenet5 import Predictor
from lenet5.plotting import require_matplotlib
from lenet5.preprocess import to_mnist


def drawn_seven() -> Image.Image:
    """A 7 in dark blue felt pen on cream paper, slightly tilted, off-centre."""
    picture = Image.new("RGB", (240, 240), (250, 244, 228))
    pen = ImageDraw.Draw(picture)
    stroke = [(62, 58), (178, 52), (168, 76), (112, 198)]
    pen.line(stroke, fill=(28, 42, 120), width=15, joint="curve")
    pen.line([(100, 128), (160, 124)], fill=(28, 42, 120), width=11)
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    plt = require_matplotlib()
    picture = drawn_seven()
    predictor = Predictor("DEFAULT")
    (prediction,) = predictor.predict([picture], top_k=10)
    probabilities = [0.0] * 10
    for candidate in prediction.top_k:
        probabilities[candidate.index] = candidate.probability
    fig, (ax_pic, ax_in, ax_p) = plt.subplots(
        1, 3, figsize=(9.6, 3.0), width_ratios=(1, 1, 1.6), layout="constrained"
    )
    ax_pic.imshow(picture)
    ax_pic.set_title("your picture", fontsize=10)
    ax_in.imshow(to_mnist(picture).numpy(), cmap="gray", vmin=0, vmax=255)
    ax_in.set_title("what the model sees (28×28)", fontsize=10)  # noqa: RUF001
    for ax in (ax_pic, ax_in):
        ax.set_xticks([])
        ax.set_yticks([])
    colours = ["tab:blue" if i == prediction.prediction else "0.75" for i in range(10)]
    ax_p.bar(range(10), [100 * p for p in probabilities], color=colours)
    ax_p.set_xticks(range(10), labels=list(predictor.classes))
    ax_p.set_ylim(0, 105)
    ax_p.set_ylabel("probability (%)")
    ax_p.set_title(f"prediction: {prediction.label} ({prediction.probability:.1%})", fontsize=10)
    ax_p.spines[["top", "right"]].set_visible(False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"{args.out}: predicted {prediction.label} with {prediction.probability:.4f}")


if __name__ == "__main__":
    main()
