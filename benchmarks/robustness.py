"""Robustness of the bundled weights: accuracy on the fixed corruptions of the test set.

    python benchmarks/robustness.py --data-dir ../shared/data/mnist
    python benchmarks/robustness.py --data-dir ../shared/data/mnist --figure corruptions.png
    python benchmarks/robustness.py --data-dir ../shared/data/mnist --weights runs/v4/seed-0

Prints one row per weight set of the dataset (``lenet5.weights.REGISTRY``, or the run
folders and files ``--weights`` names) and one column
per corruption of its test set, in the spirit of MNIST-C (Mu & Gilmer, 2019): the accuracy
on the images unchanged (*clean*), under each fixed, seeded corruption of
``lenet5.corruptions.CORRUPTIONS`` (noise: Gaussian, shot, impulse; blur: Gaussian,
motion; contrast, brightness, fog; rotate, scale, shear, translate; thicker and thinner
strokes; occluding lines), and *mCA*, the mean corruption accuracy (the mean over the
corruptions, clean left out). Every corruption is applied once with ``--seed`` (0), so
every weight set sees the same corrupted images, run after run.

The test images are used for reporting only: the corruptions and their severities were
chosen by looking at the digits (``--figure`` draws them), never by any model's accuracy.
``--figure PATH`` (needs matplotlib, the ``plot`` extra) saves a grid of the first test
digits under each corruption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lenet5 import LeNet5, evaluate
from lenet5.corruptions import CORRUPTIONS, corrupt
from lenet5.data import ImageSet, load_dataset
from lenet5.plotting import require_matplotlib
from lenet5.weights import REGISTRY

#: How many test digits the figure shows under each corruption.
FIGURE_DIGITS = 6


def corrupted_sets(test: ImageSet, seed: int) -> dict[str, ImageSet]:
    """The test set unchanged (``clean``) and under every corruption, by name."""
    sets = {"clean": test}
    for name in CORRUPTIONS:
        images = corrupt(test.images, name, seed=seed)
        sets[name] = ImageSet(images, test.labels, test.classes, test.mean, test.std)
    return sets


def table(sets: dict[str, ImageSet], weights: list[str]) -> list[str]:
    """The table's lines (Markdown): a row per weight set, a column per set, then mCA."""
    lines = [
        f"| weights | {' | '.join(sets)} | mCA |",
        "|---|" + "---|" * (len(sets) + 1),
    ]
    for name in weights:
        model = LeNet5.from_pretrained(name)
        accuracy = {key: evaluate(model, data).accuracy for key, data in sets.items()}
        corrupted = [a for key, a in accuracy.items() if key != "clean"]
        cells = [f"{a:.2f}%" for a in accuracy.values()]
        cells.append(f"{sum(corrupted) / len(corrupted):.2f}%")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def figure(sets: dict[str, ImageSet], path: Path) -> None:
    """Save a grid: a column per corruption (clean first), a row per test digit."""
    plt = require_matplotlib()
    names = list(sets)
    fig, axes = plt.subplots(
        FIGURE_DIGITS, len(names), figsize=(0.62 * len(names), 0.62 * FIGURE_DIGITS + 0.9)
    )
    for column, name in enumerate(names):
        axes[0, column].set_title(name.replace("_", " "), fontsize=7, rotation=60, loc="left")
        for row in range(FIGURE_DIGITS):
            ax = axes[row, column]
            ax.imshow(sets[name].images[row].numpy(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(wspace=0.06, hspace=0.06)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions' draws")
    parser.add_argument("--figure", type=Path, default=None, help="save the digits' grid here")
    parser.add_argument(
        "--weights",
        nargs="+",
        metavar="NAME_OR_DIR",
        help="score these instead of the bundled sets: registry names, run folders, files",
    )
    args = parser.parse_args(argv)
    test = load_dataset(args.dataset, args.data_dir, split="test")
    weights = args.weights or [n for n, w in REGISTRY.items() if w.dataset == args.dataset]
    if not weights:
        parser.error(f"no bundled weight set for the dataset {args.dataset!r}")
    sets = corrupted_sets(test, args.seed)
    if args.figure is not None:
        figure(sets, args.figure)
        print(f"figure: {args.figure}")
    print(f"{len(test)} {args.dataset} test images, corruption seed {args.seed}")
    print("\n".join(table(sets, weights)))


if __name__ == "__main__":
    main()
