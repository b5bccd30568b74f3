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
    # The settings the run started with, and the change of the resume with its step.
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["epochs"] == 1
    steps = 2000 // 32 + 1
    assert recorded["overrides"] == [{"setting": "epochs", "before": 1, "after": 2, "step": steps}]
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


# ------------------------------------------------------------------- the run folder


def test_run_folder_layout(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder

    run = RunFolder(tmp_path / "run")
    assert run.config_file == tmp_path / "run" / "train_config.json"
    assert run.metrics_file == tmp_path / "run" / "metrics.csv"
    assert run.checkpoints_dir == tmp_path / "run" / "checkpoints"
    assert run.results_file == tmp_path / "run" / "results.json"
    assert run.weights_file == tmp_path / "run" / "model.safetensors"
    assert run.card_file == tmp_path / "run" / "README.md"
    default = RunFolder.default("fashion-mnist", root=tmp_path)
    assert default.path.parent == tmp_path
    assert default.path.name.startswith("fashion-mnist-")


def test_run_folder_records_round_trip(tmp_path: Path) -> None:
    from lenet5 import TrainConfig
    from lenet5.training.run import RunFolder, RunSettings

    run = RunFolder(tmp_path / "run")
    assert run.read_settings() == RunSettings()  # nothing recorded yet
    config = TrainConfig(epochs=3, scheduler="cosine")
    run.write_settings(config, "fashion-mnist")
    settings = run.read_settings()
    assert settings.dataset == "fashion-mnist"
    assert TrainConfig.from_dict(settings.config) == config
    assert json.loads(run.config_file.read_text())["dataset"] == "fashion-mnist"
    run.write_results({"dataset": "fashion-mnist", "epochs_run": 3})
    assert run.read_results() == {"dataset": "fashion-mnist", "epochs_run": 3}
    # Written atomically: no temporary file is left beside them.
    assert sorted(p.name for p in run.path.iterdir()) == ["results.json", "train_config.json"]


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "cannot read the run's settings"), ("[1, 2]", "must hold a JSON object")],
)
def test_run_folder_unreadable_settings(tmp_path: Path, content: str, match: str) -> None:
    from lenet5.training.run import RunFolder, RunFolderError

    run = RunFolder(tmp_path)
    run.config_file.write_text(content)
    with pytest.raises(RunFolderError, match=match):
        run.read_settings()
    with pytest.raises(RunFolderError, match="has not finished"):
        run.read_results()


def test_run_folder_found_from_any_resume_path(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder

    run = tmp_path / "run"
    (run / "checkpoints" / "epoch-0002").mkdir(parents=True)
    (run / "train_config.json").write_text("{}")
    for given in (run, run / "checkpoints", run / "checkpoints" / "epoch-0002"):
        assert RunFolder.find(given) == RunFolder(run), given
    # Checkpoints written by the Python API (no settings recorded): the folder given.
    api = tmp_path / "api"
    (api / "epoch-0001").mkdir(parents=True)
    assert RunFolder.find(api) == RunFolder(api)
    # A settings file above an unrelated folder is not taken for the run's.
    (run / "other").mkdir()
    assert RunFolder.find(run / "other") == RunFolder(run / "other")


def test_run_folder_refuses_another_runs_checkpoints(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder, RunFolderError

    run = RunFolder(tmp_path / "run")
    run.check_unused()  # a folder that does not exist yet is fine
    run.checkpoints_dir.mkdir(parents=True)
    run.check_unused()  # so is an empty checkpoints folder
    (run.checkpoints_dir / "epoch-0001").mkdir()
    with pytest.raises(RunFolderError, match="already holds a run's checkpoints"):
        run.check_unused()


def test_run_folder_rewrites_its_own_card_only(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder

    run = RunFolder(tmp_path / "run")
    model = LeNet5()
    run.save_model(model, {"dataset": "mnist", "test_accuracy": "10.00"})
    card = run.card_file.read_text()
    assert "library_name: lenet5" in card
    run.card_file.write_text(card + "\nSTALE\n")
    run.save_model(model, {"dataset": "mnist", "test_accuracy": "20.00"})  # a resumed run
    assert "STALE" not in run.card_file.read_text()
    assert "library_name: lenet5" in run.card_file.read_text()
    # A README of the user's own, in a folder they chose, is never replaced.
    theirs = RunFolder(tmp_path / "theirs")
    theirs.path.mkdir()
    theirs.card_file.write_text("# My project\n")
    theirs.save_model(model, {"dataset": "mnist"})
    assert theirs.card_file.read_text() == "# My project\n"
    assert theirs.weights_file.is_file()


def test_cli_resumes_from_one_checkpoint_inside_the_run(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    common = ("--data-dir", small_mnist_dir, "--quiet")
    assert run_main("train", *common, "--epochs", "1", "--val-every", "0", "--out", out) == 0
    checkpoint = out / "checkpoints" / "epoch-0001"
    assert run_main("train", *common, "--resume", checkpoint, "--epochs", "2") == 0
    # The run folder above the checkpoint was found: its settings, metrics and results.
    assert json.loads((out / "train_config.json").read_text())["val_every"] == 0
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert not (checkpoint / "results.json").exists()
