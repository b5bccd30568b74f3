"""Recipe search on a validation split: clean and corrupted accuracy of candidate recipes.

    # one candidate: a recipe, settings over it, optionally a teacher to distil from
    python benchmarks/recipe_search.py run broad-p10 --recipe mnist-v3 \\
        --set epochs=20 --set "augment=affine,noise(p=0.1),fog(p=0.1)"
    # a teacher member, saved for distillation
    python benchmarks/recipe_search.py run teacher-1 --recipe mnist-v3 --seed 1 --save DIR
    python benchmarks/recipe_search.py run distil --teacher DIR1 DIR2 DIR3 --temperature 4
    # the table of every candidate run so far
    python benchmarks/recipe_search.py table

Every candidate trains on the same 55,000 MNIST training images and is scored on the other
5,000 (``ImageSet.split(5000, seed=0)``), both clean and under each corruption of
``lenet5.corruptions.CORRUPTIONS`` (seed 0): the test set is never read, so the choice of a
recipe never sees it. Each run writes ``NAME.json`` into ``--results`` (default
``benchmarks/results/recipe_search/``) with the exact command, the settings, the training
time, the clean accuracy, every corruption's accuracy and their mean (mCA); ``table``
prints them as one Markdown row per run.

A teacher (``--teacher``) is the mean of the logits of the LeNet-5 folders given (an
ensemble), run by :class:`lenet5.Distillation` on the very batch the student sees.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenet5 import Distillation, LeNet5, TrainConfig, Trainer, evaluate
from lenet5.corruptions import CORRUPTIONS, corrupt
from lenet5.data import ImageSet, load_dataset

#: Images held out of the 60,000 training images for validation, and the split's seed.
VAL_SIZE, SPLIT_SEED = 5000, 0
RESULTS = Path(__file__).parent / "results" / "recipe_search"


class Ensemble(nn.Module):
    """The mean of its members' logits."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def validation_sets(val: ImageSet) -> dict[str, ImageSet]:
    """The validation split clean and under every corruption (seed 0), by name."""
    sets = {"clean": val}
    for name in CORRUPTIONS:
        images = corrupt(val.images, name, seed=0)
        sets[name] = ImageSet(images, val.labels, val.classes, val.mean, val.std)
    return sets


def scores(model: nn.Module, sets: dict[str, ImageSet]) -> dict[str, float]:
    """Accuracy (%) on each set, and ``mCA`` and ``min_corruption`` over the corrupted ones."""
    accuracy = {name: evaluate(model, data).accuracy for name, data in sets.items()}
    corrupted = [a for name, a in accuracy.items() if name != "clean"]
    accuracy["mCA"] = sum(corrupted) / len(corrupted)
    accuracy["min_corruption"] = min(corrupted)
    return accuracy


def parse_value(text: str) -> Any:
    """``20`` -> 20, ``3e-3`` -> 0.003, ``none`` -> None, anything else the string."""
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(args: argparse.Namespace) -> None:
    overrides = dict(item.split("=", 1) for item in args.set)
    config = TrainConfig.from_recipe(
        args.recipe,
        **{key: parse_value(value) for key, value in overrides.items()},
        seed=args.seed,
        val_every=0,
        verbose=False,
        device="cpu",
    )
    full = load_dataset("mnist", args.data_dir)
    train, val = full.split(VAL_SIZE, seed=SPLIT_SEED)
    callbacks = []
    loss_fn = None
    if args.teacher:
        teacher = Ensemble([LeNet5.from_pretrained(path) for path in args.teacher])
        distil = Distillation(teacher, args.temperature, args.alpha)
        callbacks, loss_fn = [distil], distil.loss
    trainer = Trainer(config=config, callbacks=callbacks, loss_fn=loss_fn)
    start = time.perf_counter()
    trainer.fit(train)
    seconds = time.perf_counter() - start
    accuracy = scores(trainer.model, validation_sets(val))
    if args.save:
        trainer.model.save_pretrained(args.save)
    record = {
        "name": args.name,
        "command": "python benchmarks/recipe_search.py " + shlex.join(sys.argv[1:]),
        "config": {k: v for k, v in config.to_dict().items() if k != "verbose"},
        "teacher": [str(p) for p in args.teacher],
        "temperature": args.temperature if args.teacher else None,
        "alpha": args.alpha if args.teacher else None,
        "train_images": len(train),
        "val_images": len(val),
        "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "val": {k: round(v, 2) for k, v in accuracy.items()},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"{args.name}: clean {accuracy['clean']:.2f}%, mCA {accuracy['mCA']:.2f}%, "
        f"min {accuracy['min_corruption']:.2f}%, {seconds:.0f} s"
    )


def table(args: argparse.Namespace) -> None:
    records = [json.loads(p.read_text()) for p in sorted(args.results.glob("*.json"))]
    records.sort(key=lambda r: (-r["val"]["clean"], -r["val"]["mCA"]))
    if args.figure is not None:
        trade_off(records, args.figure)
    print("| run | epochs | val clean | val mCA | worst corruption | train s | command |")
    print("|---|---|---|---|---|---|---|")
    for r in records:
        v = r["val"]
        worst = min((k for k in v if k in CORRUPTIONS), key=lambda k: v[k])
        print(
            f"| {r['name']} | {r['config']['epochs']} | {v['clean']:.2f}% | {v['mCA']:.2f}% "
            f"| {worst} {v[worst]:.2f}% | {r['train_seconds']:.0f} | `{r['command']}` |"
        )


def trade_off(records: list[dict[str, Any]], path: Path) -> None:
    """Clean against corrupted validation accuracy, one numbered point per run (the
    trade-off): all runs on the left, the robust ones (mCA >= 95%) enlarged on the right."""
    from lenet5.plotting import require_matplotlib

    plt = require_matplotlib()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), width_ratios=[1, 1.4], layout="constrained")
    robust = [r for r in records if r["val"]["mCA"] >= 95]
    for ax, shown in zip(axes, (records, robust), strict=True):
        for number, r in enumerate(records, 1):
            if r not in shown:
                continue
            distilled = bool(r["teacher"])
            x, y = r["val"]["mCA"], r["val"]["clean"]
            ax.scatter(x, y, marker="s" if distilled else "o", s=12 + 1.2 * r["config"]["epochs"],
                       color="C1" if distilled else "C0", zorder=3)  # fmt: skip
            ax.annotate(str(number), (x, y), fontsize=8, xytext=(5, 3), textcoords="offset points")
        ax.set(xlabel="mean corruption accuracy on validation (%)")
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="clean validation accuracy (%)", title="all candidates")
    axes[1].set(title="the robust ones (marker size: epochs; squares: distilled)")
    names = [f"{i}  {r['name']} ({r['config']['epochs']} epochs)" for i, r in enumerate(records, 1)]
    fig.legend(
        handles=[plt.Line2D([], [], linestyle="none")] * len(names),
        labels=names,
        loc="outside right center",
        fontsize=8,
        handlelength=0,
        frameon=False,
    )
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of NAME.json")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="train and score one candidate")
    one.add_argument("name", help="the run's name (its results file is NAME.json)")
    one.add_argument("--recipe", default="mnist-v3", help="the recipe the settings start from")
    one.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a TrainConfig field"
    )
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--data-dir", help="MNIST folder (default: $LENET5_DATA_DIR)")
    one.add_argument("--teacher", nargs="+", default=[], metavar="DIR", help="LeNet-5 folders")
    one.add_argument("--temperature", type=float, default=4.0)
    one.add_argument("--alpha", type=float, default=0.9, help="weight of the teacher's term")
    one.add_argument("--save", type=Path, metavar="DIR", help="save the trained model here")
    tab = sub.add_parser("table", help="print every run's row")
    tab.add_argument("--figure", type=Path, help="also draw clean against corrupted accuracy")
    args = parser.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
