"""Bundle a trained run as a registry weight set (a maintainer's tool, not shipped).

    python scripts/bundle_weights.py runs/mnist-v1 mnist-v1 \
        --recipe "lenet5 train --epochs 30 --scheduler cosine --seed 0" --notes "..."

Reads the run folder (its final model, settings and results; the folder's layout is
``lenet5.training.run.RunFolder``'s), evaluates the model on the test split of the run's
dataset, writes src/lenet5/pretrained/NAME.safetensors with what it measured in the file's
header, and prints those facts for the registry entry in src/lenet5/weights/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from lenet5 import LeNet5, evaluate
from lenet5.data import DATASETS, load_dataset
from lenet5.training.run import RunFolder
from lenet5.weights import save_weights

PRETRAINED = Path(__file__).resolve().parent.parent / "src" / "lenet5" / "pretrained"
# Registry-only facts: not known before the file is written, or not about the file itself.
NOT_IN_HEADER = ("file", "sha256", "file_size", "seed_accuracies")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("run", type=Path, help="a folder written by lenet5 train --out")
    parser.add_argument("name", help="registry name, e.g. mnist-v1")
    parser.add_argument("--recipe", required=True, help="the exact command that trained it")
    parser.add_argument("--notes", default="", help="how the recipe was chosen")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--seed-accuracies",
        type=float,
        nargs="+",
        default=[],
        help="test accuracy of the recipe with seeds 0, 1, 2... (this run is seed 0)",
    )
    return parser.parse_args()


def measure(args: argparse.Namespace, run: RunFolder) -> tuple[LeNet5, dict[str, Any]]:
    """The run's model and what is known about it: read from the run, or measured here."""
    dataset = run.read_results()["dataset"]
    info = DATASETS[dataset]
    model = LeNet5.from_pretrained(run.path)
    result = evaluate(model, load_dataset(dataset, args.data_dir, split="test"))
    print(f"# test accuracy {result.accuracy:.2f}% (loss {result.loss:.4f})")
    facts = {
        "name": args.name,
        "file": f"{args.name}.safetensors",
        "dataset": dataset,
        "test_accuracy": round(result.accuracy, 2),
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_classes": model.num_classes,
        "in_channels": model.in_channels,
        "mean": info.mean,
        "std": info.std,
        "classes": info.classes,
        "recipe": args.recipe,
        "torch_version": torch.__version__.split("+")[0],
        "notes": args.notes,
        "seed_accuracies": tuple(args.seed_accuracies),
    }
    return model, facts


def main() -> None:
    args = parse_args()
    run = RunFolder(args.run)
    settings = run.read_settings()
    print(f"# trained with: {json.dumps(settings.config)}")
    for o in settings.overrides:  # changed on resume, from the step given
        print(f"# from step {o['step']}: {o['setting']} {o['before']!r} -> {o['after']!r}")
    model, facts = measure(args, run)
    # The header holds strings: text as it is, everything else as JSON (numbers, class list).
    header = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in facts.items()
        if key not in NOT_IN_HEADER
    }
    path = save_weights(model, PRETRAINED / facts["file"], metadata=header)
    data = path.read_bytes()
    facts["sha256"] = hashlib.sha256(data).hexdigest()
    facts["file_size"] = len(data)
    # Every fact, for the registry entry: arrange them the way lenet5.weights records them.
    print(f"    {args.name!r}: Weights(")
    for key, value in facts.items():
        print(f"        {key}={value!r},")
    print("    ),")


if __name__ == "__main__":
    main()
