"""The run folder (lenet5.training.run): its layout, its records, its lock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import strict_json
from lenet5 import LeNet5
from lenet5.training.run import RunFolder

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


# ----------------------------------------------------------------------------- the records


def test_results_json_is_strict_with_the_reason(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    history = [{"loss": 0.5}, {"loss": float("inf")}]
    run.write_results({"test_accuracy": 8.0, "test_loss": float("nan"), "history": history})
    written = strict_json(run.results_file.read_text())
    assert written["test_loss"] is None
    assert written["history"] == [{"loss": 0.5}, {"loss": None}]
    assert written["non_finite"] == {"test_loss": "nan", "history[1].loss": "inf"}
    assert run.read_results()["test_accuracy"] == 8.0


def test_malformed_overrides_in_the_run_settings(tmp_path: Path) -> None:
    from lenet5.training.run import RunFolder, RunFolderError

    run = RunFolder(tmp_path)
    run.config_file.write_text(json.dumps({"epochs": 2, "overrides": [{"setting": "lr"}]}))
    with pytest.raises(RunFolderError, match=r"train_config.json: malformed overrides"):
        run.read_settings()


# --------------------------------------------------------------- one writer per run folder


def test_a_run_folder_that_cannot_be_made_or_locked(tmp_path: Path) -> None:
    from lenet5._io import WriteError
    from lenet5.training.run import RunFolder

    (tmp_path / "a file").write_text("")
    with (
        pytest.raises(WriteError, match=r"^cannot write .*a file/run: "),
        RunFolder(tmp_path / "a file" / "run").lock(),
    ):
        pass
    (tmp_path / "run" / ".lock").mkdir(parents=True)  # the lock is a folder
    with (
        pytest.raises(WriteError, match=r"run/\.lock: Is a directory$"),
        RunFolder(tmp_path / "run").lock(),
    ):
        pass


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A run folder whose lock another holder (another file descriptor) has taken."""
    from filelock import FileLock

    folder = tmp_path / "run"
    folder.mkdir()
    other = FileLock(str(folder / ".lock"), timeout=0)
    other.acquire()
    try:
        yield folder
    finally:
        other.release()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("owner", "who"),
    [
        ("{not json", "another process"),
        (
            json.dumps({"pid": 4242, "host": "elsewhere", "started": "today"}),
            "process 4242 on elsewhere, since today",
        ),
        ("dead", "process {pid} on {host}, since yesterday"),
    ],
    ids=["unreadable", "other-host", "dead-process"],
)
def test_a_locked_run_folder_names_who_holds_it(held_lock: Path, owner: str, who: str) -> None:
    from lenet5.training.run import RunFolder, RunFolderLocked

    pid, host = _dead_pid(), socket.gethostname()
    if owner == "dead":  # a record left by a process that died (a live one would rewrite it)
        owner = json.dumps({"pid": pid, "host": host, "started": "yesterday"})
    (held_lock / ".lock.owner").write_text(owner)
    with pytest.raises(RunFolderLocked) as info, RunFolder(held_lock).lock():
        pass
    assert str(info.value) == f"{held_lock} is in use by {who.format(pid=pid, host=host)}"
