"""``lenet5 train``: the run folder it writes, its flags and usage errors, nothing written
before the settings, the data and the output folder are checked, one writer per run folder,
and resuming with ``--resume``.

Most cases call ``lenet5.cli.main`` in this process (a subprocess costs seconds of imports);
the hostile ones run a real process: two real writers on one run folder, a process killed
with SIGKILL, a full file system. Each asserts the exit code, the one line on standard error
(no traceback) and the files left behind. Signals are in ``test_signals.py``. The small
trainings use the ``data`` folder (256 images in batches of 32: 8 steps per epoch) or the
2,000 images of ``small_mnist_dir``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cli_helpers import (
    NO_MD5_WARNING,
    SIGNAL_CALLBACK,
    STEPS,
    Runner,
    assert_one_line_error,
    environment,
    final_accuracy,
    finish,
    names,
    one_line_error,
    run_main,
    signalled,
    start,
    train_args,
    wait_for,
)
from helpers import quiet, tmpfs
from lenet5 import Checkpoint, ImageSet, LeNet5
from lenet5.cli import main
from lenet5.data import load_dataset
from lenet5.training.checkpoint import load_checkpoint
from lenet5.weights import read_safetensors

LENET5 = (sys.executable, *NO_MD5_WARNING, "-m", "lenet5")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def rates(run: Path) -> list[float]:
    """The learning rate of each epoch, from the run's metrics.csv."""
    with (run / "metrics.csv").open(newline="") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


# -------------------------------------------------------------------------- the run folder


def test_train_writes_the_run_folder(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]], mnist_test: ImageSet
) -> None:
    out, result = trained_run
    for name in (
        "model.safetensors",
        "config.json",
        "train_config.json",
        "metrics.csv",
        "results.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "epoch-0001" / "trainer.pt").is_file()
    accuracy = final_accuracy(result.stdout)
    # The printed figure is the saved model's on the folder's 1,000 test images.
    from lenet5 import LeNet5, evaluate

    saved = evaluate(LeNet5.from_pretrained(out), mnist_test.subset(slice(0, 1000)))
    assert accuracy == round(saved.accuracy, 2)
    assert json.loads((out / "results.json").read_text())["test_accuracy"] == saved.accuracy
    assert accuracy > 60.0  # it learnt: one epoch on 2,000 images, 10% by chance
    assert re.search(r"^Epoch 1 \| Loss: \d+\.\d{4} \| Validation Accuracy: ", result.stdout, re.M)

    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 1
    assert results["dataset"] == "mnist"
    assert f"{results['test_accuracy']:.2f}" == f"{accuracy:.2f}"
    assert len(results["history"]) == 1

    config = json.loads((out / "train_config.json").read_text())
    assert config["epochs"] == 1
    assert config["batch_size"] == 32
    assert config["optimizer"] == "adam"

    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]

    model = LeNet5.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == 44_426
    # the saved model reproduces the reported accuracy on the (subset) test images
    subset = mnist_test.subset(slice(0, 1000))
    assert f"{evaluate(model, subset).accuracy:.2f}" == f"{accuracy:.2f}"


@pytest.mark.slow
def test_train_full_mnist_one_epoch(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    out = tmp_path / "full"
    result = run_cli(
        "train", "--data-dir", mnist_dir, "--epochs", "1", "--device", "cpu", "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the official files verify: no warnings
    assert "60,000 images" in result.stdout
    assert final_accuracy(result.stdout) > 90.0
    assert LeNet5.from_pretrained(out).num_classes == 10


def test_lenet5_train_with_the_new_options(
    run_cli: Any, small_mnist_dir: Path, tmp_path: Path
) -> None:
    import json

    out = tmp_path / "run"
    done = run_cli(
        "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", "1",
        "--batch-size", "50", "--precision", "bf16-mixed", "--accumulate-grad-batches", "4",
        "--grad-clip-norm", "1.0", "--val-every-steps", "5", "--val-every", "1",
        python_flags=["-W", "ignore::UserWarning"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = json.loads((out / "train_config.json").read_text())
    config = settings.get("config", settings)
    assert (config["precision"], config["accumulate_grad_batches"]) == ("bf16-mixed", 4)
    assert config["grad_clip_norm"] == 1.0
    rows = (out / "metrics.csv").read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert row[header.index("global_step")] == "10"  # 2,000 images / 50 = 40 batches, 4 a step


def test_plots(tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plotted run"
    args = ("--data-dir", small_mnist_dir, "--epochs", "2", "--val-every", "1", "--plot")
    assert run_main("train", *args, "--out", out) == 0
    stdout = capsys.readouterr().out
    assert "Summary" in stdout
    assert "test accuracy" in stdout
    for name in ("training_curves.png", "confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as image:
            assert image.width > 300
            assert image.height > 200
    figures = tmp_path / "eval figures"
    assert (
        run_main("evaluate", "--weights", out, "--data-dir", small_mnist_dir, "--plot", figures)
        == 0
    )
    assert (figures / "confusion_matrix.png").is_file()
    assert (figures / "misclassified.png").is_file()


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(
    tmp_path: Path, small_mnist_dir: Path, run_cli: Callable[..., Any]
) -> None:
    """``--lr 1e300`` used to train to the end, print 8% and save NaN weights with exit 0."""
    out = tmp_path / "run"
    result = run_cli(
        "train", "--data-dir", small_mnist_dir, "--out", out, "--epochs", "3",
        "--lr", "1e300", "--batch-size", "500", "--quiet",
    )  # fmt: skip
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(error) == 1
    assert "the training loss became nan in epoch 1" in error[0]
    assert "lower the learning rate" in error[0]
    assert not (out / "model.safetensors").exists()
    assert not (out / "results.json").exists()
    # The loss is NaN from the first epoch on, so there was no good checkpoint to keep.
    assert list(out.glob("checkpoints/epoch-*")) == []


# --------------------------------------------------------------- usage errors and failures


@pytest.mark.parametrize(
    ("flags", "field"),
    [(["--epochs", "-1"], "epochs"), (["--optimizer", "adagrad"], "optimizer")],
    ids=["negative-epochs", "unknown-optimizer"],
)
def test_bad_option_values_are_usage_errors(
    flags: list[str], field: str, mnist_dir: Path, tmp_path: Path, run_cli: Runner
) -> None:
    result = run_cli("train", "--data-dir", mnist_dir, "--out", tmp_path / "run", *flags)
    line = assert_one_line_error(result, 2)
    # A bad value names its flag; argparse names a refused choice.
    assert line.startswith(f"lenet5 train: error: {flags[0]}: {field}") or f"'{flags[1]}'" in line
    assert field in line
    assert not (tmp_path / "run").exists()  # nothing was started


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--scheduler", "linear"], "scheduler"),
        (["--lr", "0"], "lr"),
        (["--batch-size", "0"], "batch_size"),
        (["--val-every", "-2"], "val_every"),
        (["--checkpoint-every", "0"], "checkpoint-every"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_more_usage_errors_in_process(
    flags: list[str],
    field: str,
    mnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "--data-dir", str(mnist_dir), "--out", str(tmp_path / "run"), *flags])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("lenet5 train: error:")
    assert field in err[0]
    assert not (tmp_path / "run").exists()


def test_missing_data_folder(tmp_path: Path, run_cli: Runner) -> None:
    missing = tmp_path / "no-such-folder"
    result = run_cli("train", "--data-dir", missing, "--epochs", "1", "--out", tmp_path / "run")
    line = assert_one_line_error(result, 1)
    assert str(missing) in line
    assert "does not exist" in line


def test_unknown_callback_name(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        "--callbacks",
        "early_stoping",
        "--out",
        tmp_path / "run",
    )
    line = assert_one_line_error(result, 2)  # a typo on the command line is a usage error
    assert not (tmp_path / "run").exists()  # nothing written
    assert "unknown callback 'early_stoping'" in line
    assert "early_stopping" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda(mnist_dir: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        "--device",
        "cuda",
        "--out",
        tmp_path / "run",
    )
    line = assert_one_line_error(result, 1)
    assert "CUDA is not available" in line


# ------------------------------------------------------------- validate first, write after


def test_val_split_larger_than_the_data_is_refused_before_any_file_exists(
    mnist_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = start(["train", "--data-dir", mnist_dir, "--val-split", "70000", "--out", out],
                 cwd=tmp_path)  # fmt: skip
    code, _, err = finish(done)
    assert code == 2, err
    assert one_line_error(err, "train") == (
        "lenet5 train: error: --val-split 70,000 holds out every training image: the mnist "
        "training split has 60,000; hold out fewer"
    )
    assert not out.exists()


def test_an_out_that_is_a_file_is_a_usage_error(data: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "results.txt"
    blocker.write_text("mine")
    code, _, err = finish(start(train_args(data, blocker), cwd=tmp_path))
    assert code == 2, err
    line = one_line_error(err, "train")
    assert line == f"lenet5 train: error: --out {blocker} is a file, not a folder"
    assert blocker.read_text() == "mine"
    assert names(tmp_path) == ["results.txt"]


def test_plot_without_matplotlib_fails_before_anything_is_written(
    data: Path, tmp_path: Path
) -> None:
    hidden = tmp_path / "no-matplotlib"
    (hidden / "matplotlib").mkdir(parents=True)
    (hidden / "matplotlib" / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = tmp_path / "run"
    process = start([*train_args(data, out), "--plot"], cwd=tmp_path, env=environment([hidden]))
    code, _, err = finish(process)
    assert code == 1, err
    assert "plots need matplotlib" in one_line_error(err, "train")
    assert not out.exists()


def test_unwritable_output_folder(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    args = ("--data-dir", small_mnist_dir, "--epochs", "1", "--out", blocker / "run")
    assert run_main("train", *args) == 1
    line = one_line_error(capsys.readouterr().err, "train")
    assert "not writable" in line
    assert "--out" in line


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: room for one checkpoint of LeNet-5 (about 560 kB), not for two."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root and the mount command")
    with tmpfs(tmp_path / "small-fs", "size=1m") as folder:
        yield folder


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder that cannot be written to, even by root: a read-only tmpfs (or, without
    root, a folder without write permission)."""
    folder = tmp_path / "read-only"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    with tmpfs(folder, "ro,size=64k"):
        yield folder


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(
    data: Path, small_filesystem: Path, tmp_path: Path
) -> None:
    out = small_filesystem / "run"
    code, _, err = finish(start(train_args(data, out), cwd=tmp_path))
    assert code == 1, err
    checkpoints = out / "checkpoints"
    assert one_line_error(err, "train") == (
        f"lenet5 train: error: cannot write {checkpoints / 'epoch-0002'}: No space left on device"
    )
    assert names(checkpoints) == ["epoch-0001", "latest"]  # no half-written epoch-0002
    assert (checkpoints / "latest").read_text().strip() == "epoch-0001"
    assert load_checkpoint(checkpoints / "epoch-0001")[1]["epoch"] == 1  # intact
    assert not [p for p in out.rglob("*.tmp")]


def test_a_write_error_names_the_file_and_leaves_nothing_half_written(
    data: Path, tmp_path: Path
) -> None:
    """The same without root: files may not grow past 300 kB (RLIMIT_FSIZE), so the first
    checkpoint's trainer state (about 375 kB) cannot be written."""
    import resource

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    out = tmp_path / "run"
    process = subprocess.Popen(
        [*LENET5, *map(str, train_args(data, out))],
        cwd=tmp_path,
        env=environment(PYTHONDONTWRITEBYTECODE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limited,
    )
    code, _, err = finish(process)
    assert code == 1, err
    assert one_line_error(err, "train") == (
        f"lenet5 train: error: cannot write {out / 'checkpoints' / 'epoch-0001'}: File too large"
    )
    assert names(out / "checkpoints") == []
    assert not [p for p in out.rglob("*.tmp")]


def test_an_unwritable_parent_is_refused_before_anything_is_written(
    data: Path, read_only_folder: Path, tmp_path: Path
) -> None:
    out = read_only_folder / "runs" / "run"
    code, _, err = finish(start(train_args(data, out), cwd=tmp_path))
    assert code == 1, err
    line = one_line_error(err, "train")
    assert line.startswith(f"lenet5 train: error: output folder {out} is not writable ")
    assert f"({read_only_folder}: " in line
    assert line.endswith("; choose another with --out")
    assert names(read_only_folder) == []


# --------------------------------------------------------------- one writer per run folder


def test_a_second_writer_is_refused_and_a_killed_ones_lock_does_not_block(
    data: Path, site: Path, tmp_path: Path
) -> None:
    out, ready = tmp_path / "run", tmp_path / "first is training"
    first = start(
        train_args(data, out, "--callbacks", SIGNAL_CALLBACK),
        cwd=tmp_path,
        env=signalled(site, f"@{STEPS + 2}", LENET5_TEST_READY=str(ready)),
    )
    try:
        wait_for(ready, first)  # in epoch 2, holding the lock, the first checkpoint written
        before = snapshot(out)
        for again in (train_args(data, out), ["train", "--resume", out, "--data-dir", data]):
            process = start(again, cwd=tmp_path, launcher=(*LENET5[:-2], "-X", "importtime",
                                                            "-m", "lenet5"))  # fmt: skip
            code, _, err = finish(process)
            imported = [line for line in err.splitlines() if line.startswith("import time:")]
            err = "\n".join(line for line in err.splitlines() if line not in imported)
            assert code == 1, err
            line = one_line_error(err, "train")
            assert line.startswith(f"lenet5 train: error: {out} is in use by process {first.pid}")
            assert "one run folder has one writer" in line
            assert not any(i.rsplit("|", 1)[-1].strip() == "torch" for i in imported)  # at once
        assert snapshot(out) == before
    finally:
        first.kill()  # SIGKILL: no handler runs, the lock file stays behind
        first.wait()
    assert (out / ".lock").exists()
    assert json.loads((out / ".lock.owner").read_text())["pid"] == first.pid
    # What a crash in the middle of writing leaves: temporaries, removed under the lock.
    (out / ".results.json.x1y2.tmp").write_text("half")
    (out / "checkpoints" / ".epoch-0002.a1b2.tmp").mkdir()
    resumed = start(["train", "--resume", out, "--data-dir", data], cwd=tmp_path)
    code, stdout, err = finish(resumed)
    assert code == 0, err
    assert stdout.startswith("Final | Test Accuracy: ")
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    assert names(out) == [".lock", "README.md", "checkpoints", "config.json", "metrics.csv",
                          "model.safetensors", "results.json", "train_config.json"]  # fmt: skip
    assert names(out / "checkpoints") == ["epoch-0001", "epoch-0002", "latest"]


@pytest.mark.slow  # the case above proves the refusal; this one, the race of two starts
def test_two_writers_started_together_one_is_refused(
    data: Path, site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    ready = {n: tmp_path / f"{n} is training" for n in ("a", "b")}
    processes = {
        n: start(
            train_args(data, out, "--callbacks", SIGNAL_CALLBACK),
            cwd=tmp_path,
            env=signalled(site, "@2", LENET5_TEST_READY=str(ready[n])),
        )
        for n in ready
    }
    try:
        deadline = time.monotonic() + 300
        while all(p.poll() is None for p in processes.values()):
            assert time.monotonic() < deadline, "neither was refused"
            time.sleep(0.05)
        (loser,) = (n for n, p in processes.items() if p.poll() is not None)
        (winner,) = set(processes) - {loser}
        code, _, err = finish(processes[loser])
        assert code == 1, err
        line = one_line_error(err, "train")
        assert line.startswith(f"lenet5 train: error: {out} is in use by process ")
        assert f"process {processes[winner].pid} on " in line
        wait_for(ready[winner], processes[winner])
        assert not ready[loser].exists()  # the loser never trained
        processes[winner].send_signal(signal.SIGTERM)
        code, _, err = finish(processes[winner])
        assert code == 143, err
        assert names(out / "checkpoints") == ["epoch-0001-batch-000002", "latest"]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------- resume


def test_train_resume_continues_the_run(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    run_cli: Runner,
) -> None:
    first, _ = trained_run
    out = tmp_path / "run"
    # copy the one-epoch run, so the module's fixture stays as it was
    import shutil

    shutil.copytree(first, out)
    before = LeNet5.from_pretrained(out)
    result = run_cli(
        "train",
        "--resume",
        out,
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--data-dir",
        small_mnist_dir,
        python_flags=NO_MD5_WARNING,
    )
    assert result.returncode == 0, result.stderr
    final_accuracy(result.stdout)
    assert "Epoch 1 |" not in result.stdout  # epoch 1 is not trained again
    assert re.search(r"^Epoch 2 \| Loss: ", result.stdout, re.M)
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2
    assert len(results["history"]) == 2
    with (out / "metrics.csv").open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    assert (out / "checkpoints" / "epoch-0002").is_dir()
    assert (out / "checkpoints" / "latest").read_text().strip() == "epoch-0002"
    after = LeNet5.from_pretrained(out)
    assert not torch.equal(before.features[0].weight, after.features[0].weight)


def test_resume_rewrites_the_model_card(
    trained_run: tuple[Path, subprocess.CompletedProcess[str]],
    small_mnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    from cli_helpers import run_main

    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    card = out / "README.md"
    assert "library_name: lenet5" in card.read_text()
    card.write_text(card.read_text() + "\nSTALE: the card of the first epoch\n")
    args = ("--resume", out, "--epochs", "2", "--quiet", "--data-dir", small_mnist_dir)
    assert run_main("train", *args) == 0
    assert "STALE" not in card.read_text()
    assert "library_name: lenet5" in card.read_text()
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2


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


def test_a_run_checkpointed_from_python_resumes_with_the_command_line(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder without the settings record that ``lenet5 train`` writes: the checkpoint
    of a Python fit (``Checkpoint(run / "checkpoints")``) is continued by the CLI."""
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the subset's files are not the official
        data = load_dataset("mnist", small_mnist_dir, split="train")
    quiet(epochs=1, callbacks=[Checkpoint(run / "checkpoints")]).fit(data)
    resumed = quiet(epochs=2, callbacks=[Checkpoint(run / "checkpoints")])
    resumed.fit(data, resume=run / "checkpoints")  # a first resume, with a change
    assert not (run / "train_config.json").exists()
    args = ("--data-dir", small_mnist_dir, "--epochs", "3", "--quiet")
    assert run_main("train", "--resume", run, *args) == 0, capsys.readouterr().err
    recorded = json.loads((run / "train_config.json").read_text())
    assert recorded["epochs"] == 1  # the settings the run started with, then the overrides
    assert [(o["setting"], o["before"], o["after"]) for o in recorded["overrides"]] == [
        ("epochs", 1, 2),
        ("epochs", 2, 3),
    ]
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 3


def test_resume_records_the_settings_it_changes_and_applies_them(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert run_main(*train_args(data, out, epochs=1)) == 0
    process = start(["train", "--resume", out, "--data-dir", data, "--epochs", "2", "--lr",
                     "0.01", "--no-quiet"], cwd=tmp_path)  # fmt: skip
    code, stdout, err = finish(process)
    assert code == 0, err
    assert "Resumed with lr 0.001 -> 0.01 from step 8" in stdout
    recorded = json.loads((out / "train_config.json").read_text())
    assert (recorded["epochs"], recorded["lr"]) == (1, 0.001)  # what the run started with
    assert recorded["overrides"] == [
        {"setting": "epochs", "before": 1, "after": 2, "step": STEPS},
        {"setting": "lr", "before": 0.001, "after": 0.01, "step": STEPS},
        {"setting": "verbose", "before": False, "after": True, "step": STEPS},
    ]
    header = read_safetensors(out / "model.safetensors")[1]
    assert json.loads(header["train_config"]) == {k: v for k, v in recorded.items()
                                                  if k != "dataset"}  # fmt: skip
    # Applied, not only written down: the optimizer trained epoch 2 at the new rate.
    assert rates(out) == [0.001, 0.01]
    # A later resume keeps the changed rate (it is not reverted to the recorded start).
    assert run_main("train", "--resume", out, "--data-dir", data, "--epochs", "3") == 0
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["lr"] == 0.001
    assert recorded["overrides"][3:] == [
        {"setting": "epochs", "before": 2, "after": 3, "step": 2 * STEPS}
    ]
    assert rates(out) == [0.001, 0.01, 0.01]


@pytest.mark.parametrize(
    ("flags", "setting"),
    [
        (["--epochs", "1"], "epochs"),  # fewer than the 2 done
        (["--batch-size", "64"], "batch_size"),
        (["--optimizer", "sgd"], "optimizer"),
        (["--val-split", "10"], "val_split"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_resume_that_cannot_take_effect_is_refused_before_anything_is_written(
    flags: list[str], setting: str, finished_run: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    code, _, err = finish(start(["train", "--resume", out, "--data-dir", data, *flags],
                                cwd=tmp_path))  # fmt: skip
    assert code == 2, err
    line = one_line_error(err, "train")
    assert line.startswith(f"lenet5 train: error: {out / 'checkpoints' / 'epoch-0002'}: ")
    assert f"cannot resume with {setting} " in line
    assert snapshot(out) == before


@pytest.fixture(scope="module")
def finished_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run (copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert run_main(*train_args(data, out)) == 0
    return out


def test_resume_from_a_folder_without_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no checkpoint found" in err[0]


def test_a_resume_path_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "--resume", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lenet5 train: error: --resume {tmp_path / 'nothing'} does not exist"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"lr": NaN}', "NaN is not JSON"),
        ('{"momentum": -1}', r"momentum must be in \[0, 1\)"),
        ('{"dataset": ["mnist"]}', "dataset must be a name"),
        ('{"overrides": [{"setting": [], "before": 1, "after": 2, "step": 0}]}', "overrides"),
    ],
)
def test_a_hostile_train_config_json_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: str, message: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(record)
    before = sorted(p.name for p in run.iterdir())
    assert run_main("train", "--data-dir", tmp_path, "--resume", run) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert str(run / "train_config.json") in line
    assert re.search(message, line), line
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written


def test_failures_leave_earlier_results_untouched(
    tmp_path: Path, small_mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        run_main("train", "--data-dir", small_mnist_dir, "--epochs", "1", "--quiet", "--out", out)
        == 0
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    for args, code in (
        (("--callbacks", "no_such_callback"), 2),
        (("--epochs", "-3"), 2),
        (("--device", "cuda:99"), 1),
        (("--data-dir", tmp_path / "nowhere"), 1),
    ):
        assert run_main("train", "--resume", out, "--epochs", "2", *args) == code, args
        assert one_line_error(capsys.readouterr().err, "train").startswith("lenet5 train: error: ")
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
