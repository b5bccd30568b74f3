"""The record of a weight set (lenet5.weights.Weights) and its ``meta``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import save_file

from lenet5 import LeNet5
from lenet5.data import DATASETS
from lenet5.weights import REGISTRY

REQUIRED_META = {
    "classes",
    "dataset",
    "mean",
    "std",
    "num_params",
    "file_size",
    "test_accuracy",
    "recipe",
    "seed_accuracies",
    "corruption_accuracy",
    "torch_version",
    "notes",
    "in_channels",
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_meta_holds_the_facts_and_the_attributes_read_it(name: str) -> None:
    entry = REGISTRY[name]
    assert set(entry.meta) >= REQUIRED_META
    meta = entry.meta
    assert (entry.dataset, entry.mean, entry.std) == (meta["dataset"], meta["mean"], meta["std"])
    assert (entry.classes, entry.num_classes) == (meta["classes"], len(meta["classes"]))
    assert (entry.file_size, entry.num_params) == (meta["file_size"], meta["num_params"])
    assert entry.test_accuracy == meta["test_accuracy"]
    assert entry.recipe == meta["recipe"]
    assert entry.seed_accuracies == meta["seed_accuracies"]
    assert entry.corruption_accuracy == meta["corruption_accuracy"]
    assert entry.config() == {"num_classes": len(meta["classes"]), "in_channels": 1}
    assert entry.path.stat().st_size == meta["file_size"]
    info = DATASETS[meta["dataset"]]
    assert (meta["mean"], meta["std"], meta["classes"]) == (info.mean, info.std, info.classes)
    transform = entry.transforms()
    assert (transform.mean, transform.std) == (entry.mean, entry.std)


def test_a_saved_folder_gets_a_record_from_its_header(tmp_path: Path) -> None:
    fashion = DATASETS["fashion-mnist"]
    header = {
        "dataset": "fashion-mnist",
        "test_accuracy": "87.50",
        "mean": "0.25",
        "classes": json.dumps([f"c{i}" for i in range(10)]),
    }
    folder = LeNet5().save_pretrained(tmp_path / "run", metadata=header)
    record = LeNet5.from_pretrained(folder).weights
    assert record is not None
    assert record.name == str(folder)
    assert record.sha256 == ""  # not bundled: nothing to check against
    assert record.path == (folder / "model.safetensors").absolute()
    assert record.verified_path() == record.path
    assert (record.dataset, record.test_accuracy) == ("fashion-mnist", 87.5)
    assert record.mean == 0.25  # from the header ...
    assert record.std == fashion.std  # ... and, where it says nothing, the dataset's facts
    assert record.classes == tuple(f"c{i}" for i in range(10))
    assert record.num_params == 44_426
    assert record.file_size == (folder / "model.safetensors").stat().st_size
    assert set(record.meta) >= REQUIRED_META
    # A bare file without header fields: MNIST's facts.
    bare = tmp_path / "bare.safetensors"
    save_file(LeNet5().state_dict(), str(bare))
    plain = LeNet5.from_pretrained(bare).weights
    assert plain is not None
    info = DATASETS["mnist"]
    assert (plain.dataset, plain.mean, plain.std, plain.classes) == (
        "mnist",
        info.mean,
        info.std,
        info.classes,
    )
    assert plain.test_accuracy is None
