"""Bundle a trained run as a registry weight set (a maintainer's tool, not shipped).

    python scripts/bundle_weights.py runs/mnist-v1 mnist-v1 \
        --recipe "lenet5 train --epochs 30 --scheduler cosine --seed 0" --notes "..."

Reads RUN/model.safetensors, evaluates it on the test split of the run's dataset, writes
src/lenet5/pretrained/NAME.safetensors with the metadata in its header, and prints the
``Weights(...)`` entry to paste into src/lenet5/weights.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from lenet5 import LeNet5
from lenet5.data import DATASETS, load_dataset
from lenet5.training import evaluate
from lenet5.weights import Weights, save_weights

PRETRAINED = Path(__file__).resolve().parent.parent / "src" / "lenet5" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args()

    train_config = json.loads((args.run / "train_config.json").read_text())
    results = json.loads((args.run / "results.json").read_text())
    dataset = results["dataset"]
    info = DATASETS[dataset]
    model = LeNet5.from_pretrained(args.run)
    test = load_dataset(dataset, args.data_dir, split="test")
    result = evaluate(model, test)
    entry = Weights(
        name=args.name,
        file=f"{args.name}.safetensors",
        sha256="",
        file_size=0,
        dataset=dataset,
        test_accuracy=round(result.accuracy, 2),
        num_params=sum(p.numel() for p in model.parameters()),
        num_classes=model.num_classes,
        in_channels=model.in_channels,
        mean=info.mean,
        std=info.std,
        classes=info.classes,
        recipe=args.recipe,
        torch_version=torch.__version__.split("+")[0],
        notes=args.notes,
    )
    PRETRAINED.mkdir(parents=True, exist_ok=True)
    path = save_weights(model, PRETRAINED / entry.file, metadata=entry.metadata())
    data = path.read_bytes()
    print(f"# trained with: {json.dumps(train_config)}")
    print(f"# test accuracy {result.accuracy:.2f}% (loss {result.loss:.4f})")
    print(f"""    "{entry.name}": Weights(
        name="{entry.name}",
        file="{entry.file}",
        sha256="{hashlib.sha256(data).hexdigest()}",
        file_size={len(data)},
        dataset="{entry.dataset}",
        test_accuracy={entry.test_accuracy},
        num_params={entry.num_params},
        num_classes={entry.num_classes},
        in_channels={entry.in_channels},
        mean={entry.mean},
        std={entry.std},
        classes={entry.classes!r},
        recipe={entry.recipe!r},
        torch_version="{entry.torch_version}",
        notes={entry.notes!r},
        seed_accuracies={tuple(args.seed_accuracies)!r},
    ),""")


if __name__ == "__main__":
    main()
