"""Edge cases found in review: resume rules, checkpoint pruning, export side effects, specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_helpers import run_main
from lenet5 import ImageSet, LeNet5, Trainer
from lenet5.export import export_model
from lenet5.training import Checkpoint, CheckpointError, ConfigError
from lenet5.training.checkpoint import prune_checkpoints


def test_a_scheduled_run_cannot_change_its_length_on_resume(
    tiny_train: ImageSet, tmp_path: Path
) -> None:
    Trainer(callbacks=[Checkpoint(tmp_path)], epochs=2, scheduler="onecycle", verbose=False).fit(
        tiny_train
    )
    longer = Trainer(
        callbacks=[Checkpoint(tmp_path)], epochs=4, scheduler="onecycle", verbose=False
    )
    with pytest.raises(CheckpointError, match="same number of epochs"):
        longer.fit(tiny_train, resume=tmp_path)
    # Without a schedule, more epochs are fine.
    Trainer(callbacks=[Checkpoint(tmp_path / "b")], epochs=1, verbose=False).fit(tiny_train)
    Trainer(epochs=2, verbose=False).fit(tiny_train, resume=tmp_path / "b")


def test_pruning_never_touches_checkpoints_after_the_new_one(tmp_path: Path) -> None:
    for name in ("epoch-0001", "epoch-0029", "epoch-0030"):
        (tmp_path / name).mkdir()
    prune_checkpoints(tmp_path, keep=2, newest=tmp_path / "epoch-0001")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "epoch-0029", "epoch-0030"]
    prune_checkpoints(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0030"]


def test_cli_refuses_to_mix_a_new_run_into_an_old_one(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        run_main("train", "--data-dir", small_mnist_dir, "--epochs", "1", "--quiet", "--out", out)
        == 0
    )
    before = (out / "model.safetensors").read_bytes()
    assert run_main("train", "--data-dir", small_mnist_dir, "--epochs", "1", "--out", out) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    # Resuming from the checkpoint folder itself finds the run's settings and folder.
    assert (
        run_main(
            "train",
            "--resume",
            out / "checkpoints",
            "--data-dir",
            small_mnist_dir,
            "--epochs",
            "2",
            "--quiet",
        )
        == 0
    )
    assert json.loads((out / "train_config.json").read_text())["epochs"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def test_export_leaves_the_model_alone(tmp_path: Path) -> None:
    model = LeNet5().train()
    export_model(model, tmp_path / "m.pt", format="torchscript")
    assert model.training
    assert all(m.training for m in model.modules())


def test_bad_devices_and_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main("evaluate", "--device", "floppy") == 2
    assert "unknown device" in capsys.readouterr().err
    for spec in ("elastic(sigma=0)", "affine(scale=1.5)", "elastic(alpha=-1)"):
        with pytest.raises(ConfigError):
            Trainer(augment=spec)


def test_elastic_works_in_float64() -> None:
    from lenet5.augment import ElasticDistortion

    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    assert (
        ElasticDistortion(alpha=8, sigma=3)(x, torch.Generator().manual_seed(0)).dtype
        == torch.float64
    )
