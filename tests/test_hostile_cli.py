"""The command line as a hostile user and a cluster scheduler use it, each case a real process.

Real signals (sent at a chosen batch by a callback plugin, or by the test at a chosen moment
of the start-up), two real writers on one run folder, a process killed with SIGKILL, a full
file system, a closed pipe. Each case asserts the exit code, the one line on standard error
(no traceback) and the files left behind. The trainings are tiny: 256 images, batches of 32
(8 steps per epoch).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from cli_helpers import (
    NO_MD5_WARNING,
    SIGNAL_CALLBACK,
    environment,
    finish,
    one_line_error,
    run_main,
    start,
    write_signal_plugin,
)
from helpers import tmpfs
from lenet5 import ImageSet
from lenet5.training.checkpoint import load_checkpoint
from lenet5.weights import read_safetensors

STEPS = 8  # per epoch: 256 images in batches of 32
LENET5 = (sys.executable, *NO_MD5_WARNING, "-m", "lenet5")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, mnist_train: ImageSet, mnist_test: ImageSet,
         idx_writer: Callable[..., Path]) -> Path:  # fmt: skip
    """256 training and 256 test images of MNIST, as IDX files."""
    folder = tmp_path_factory.mktemp("tiny-mnist")
    for prefix, split in (("train", mnist_train), ("t10k", mnist_test)):
        idx_writer(folder / f"{prefix}-images-idx3-ubyte", split.images[:256])
        idx_writer(folder / f"{prefix}-labels-idx1-ubyte", split.labels[:256].to(torch.uint8))
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the signal-sending callback plugin."""
    return write_signal_plugin(tmp_path_factory.mktemp("site"))


def train_args(data: Path, out: Path, *more: str | Path, epochs: int = 2) -> list[str | Path]:
    return ["train", "--data-dir", data, "--epochs", str(epochs), "--device", "cpu",
            "--val-every", "0", "--quiet", "--out", out, *more]  # fmt: skip


def signalled(site: Path, spec: str, **extra: str) -> dict[str, str]:
    """The environment of a run whose plugin acts as ``spec`` says (see SIGNAL_PLUGIN)."""
    return environment([site], LENET5_TEST_SIGNALS=spec, **extra)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(folder / "model.safetensors")[0]


def rates(run: Path) -> list[float]:
    """The learning rate of each epoch, from the run's metrics.csv."""
    with (run / "metrics.csv").open(newline="") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 300) -> None:
    """Wait until ``path`` exists, failing loudly if ``process`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"ended with {process.returncode}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s: {process.communicate()}")
        time.sleep(0.05)


# ----------------------------------------------------------- signals during training


def test_ctrl_c_at_a_chosen_batch_saves_it_and_the_resumed_run_ends_the_same(
    data: Path, site: Path, tmp_path: Path
) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted run"
    assert run_main(*train_args(data, straight)) == 0
    process = start(
        train_args(data, interrupted, "--callbacks", SIGNAL_CALLBACK),
        cwd=tmp_path,
        env=signalled(site, "SIGINT@3"),
    )
    code, _, err = finish(process)
    assert code == 130, err
    assert "Traceback" not in err
    assert "Stopping after this batch (Ctrl-C again to abort without saving)..." in err
    checkpoint = interrupted / "checkpoints" / "epoch-0001-batch-000003"
    assert f"Interrupted at epoch 1, batch 3 of {STEPS}; checkpoint {checkpoint} saved." in err
    assert f"lenet5 train --resume '{interrupted}' --data-dir {data}" in err
    assert names(interrupted / "checkpoints") == ["epoch-0001-batch-000003", "latest"]
    assert (interrupted / "checkpoints" / "latest").read_text().strip() == checkpoint.name
    assert load_checkpoint(checkpoint)[1]["global_step"] == 3
    assert not (interrupted / "model.safetensors").exists()  # not taken for a finished run
    assert not (interrupted / ".lock.owner").exists()  # the lock was given back
    assert run_main("train", "--resume", interrupted, "--data-dir", data) == 0
    a, b = weights(straight), weights(interrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((interrupted / "metrics.csv").read_text().splitlines()) == 1 + 2


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_second_signal_aborts_without_saving(
    name: str, code: int, data: Path, site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    step = STEPS + 3  # in the second epoch: the first one's checkpoint is there
    process = start(
        train_args(data, out, "--callbacks", SIGNAL_CALLBACK),
        cwd=tmp_path,
        env=signalled(site, f"{name},{name}@{step}"),
    )
    exit_code, _, err = finish(process)
    assert exit_code == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    shown = "Ctrl-C" if name == "SIGINT" else name
    first = "Stopping after" if name == "SIGINT" else f"{name} received: stopping after"
    assert lines[0].startswith(f"{first} this batch ("), lines
    assert lines[1:] == [f"lenet5 train: aborted by {shown}, without saving"]
    assert names(out / "checkpoints") == ["epoch-0001", "latest"]  # nothing of epoch 2
    assert (out / "checkpoints" / "latest").read_text().strip() == "epoch-0001"
    assert load_checkpoint(out / "checkpoints")[1]["global_step"] == STEPS


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGUSR1", 138)])
def test_scheduler_signals_stop_like_the_first_ctrl_c(
    name: str, code: int, data: Path, site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = start(
        train_args(data, out, "--callbacks", SIGNAL_CALLBACK),
        cwd=tmp_path,
        env=signalled(site, f"{name}@5"),
    )
    exit_code, _, err = finish(process)
    assert exit_code == code, err
    assert "Traceback" not in err
    assert f"{name} received: stopping after this batch (a second signal aborts" in err
    assert f"Interrupted at epoch 1, batch 5 of {STEPS}; checkpoint " in err
    assert f"lenet5 train --resume {out} --data-dir {data}" in err
    assert names(out / "checkpoints") == ["epoch-0001-batch-000005", "latest"]


# The start-up, interrupted where it is slow: while torch imports (torch.nn is imported
# half-way through torch's own __init__), and while the IDX files are read.
DRIVER = textwrap.dedent(
    """
    import importlib, importlib.abc, os, signal, sys

    signum, point, argv = getattr(signal, sys.argv[1]), sys.argv[2], sys.argv[3:]

    class SignalOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == point:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signum)
            return None

    if point.startswith("call:"):
        module_name, _, function = point[5:].rpartition(".")
        module = importlib.import_module(module_name)
        real = getattr(module, function)

        def signalling(*args, **kwargs):
            os.kill(os.getpid(), signum)
            return real(*args, **kwargs)

        setattr(module, function, signalling)
    else:
        sys.meta_path.insert(0, SignalOnImport())
    from lenet5.cli import main

    sys.exit(main(argv))
    """
)


@pytest.mark.parametrize(
    ("name", "point", "command"),
    [
        ("SIGINT", "torch.nn", "train"),
        ("SIGTERM", "torch.nn", "train"),
        ("SIGINT", "call:lenet5.data._files.read_idx_file", "train"),
        ("SIGUSR1", "call:lenet5.data._files.read_idx_file", "train"),
        ("SIGINT", "call:lenet5.data._files.read_idx_file", "evaluate"),
    ],
    ids=lambda v: v.rpartition(".")[2] if isinstance(v, str) else v,
)
def test_a_signal_during_start_up_gives_one_line(
    name: str, point: str, command: str, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = train_args(data, out) if command == "train" else ["evaluate", "--data-dir", data]
    process = start([name, point, *args], cwd=tmp_path, launcher=(sys.executable, "-c", DRIVER))
    code, out_text, err = finish(process)
    assert code == 128 + getattr(signal, name), err
    shown = "Ctrl-C" if name == "SIGINT" else name
    assert one_line_error(err, command) == f"lenet5 {command}: interrupted by {shown}"
    assert out_text == ""
    assert not out.exists()  # nothing was written


def test_a_closed_pipe_ends_the_command_quietly(mnist_dir: Path, tmp_path: Path) -> None:
    for args in (["info"], ["evaluate", "--data-dir", mnist_dir, "--device", "cpu"]):
        reader, writer = os.pipe()
        os.close(reader)  # nobody reads: the first write to the pipe fails (EPIPE)
        try:
            process = start(args, cwd=tmp_path, stdout=writer)
        finally:
            os.close(writer)
        code, _, err = finish(process)
        assert (code, err) == (141, ""), args


def test_a_pipe_into_head_shows_no_error(tmp_path: Path) -> None:
    if shutil.which("head") is None:
        pytest.skip("no head command")
    command = f"{sys.executable} -m lenet5 info | head -1"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=300, env=environment()
    )
    # Whether the pipe is already closed when lenet5 flushes is up to the scheduler (exit 0
    # or 141); what must hold either way: the first line, and nothing on standard error.
    assert done.stdout.startswith("lenet5 "), done
    assert done.stderr == ""


# ---------------------------------------------------------------- one writer per run


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


# ------------------------------------------------------------------ honest resumes


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


# --------------------------------------------------------- validate first, write after


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


def test_a_bit_flipped_gzip_names_the_file(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken data"
    shutil.copytree(data, broken)
    target = broken / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises((OSError, EOFError, ValueError, gzip.BadGzipFile)):
        gzip.decompress(bytes(raw))  # the damage is real
    code, _, err = finish(start(["evaluate", "--data-dir", broken, "--device", "cpu"],
                                cwd=tmp_path))  # fmt: skip
    assert code == 1, err
    assert str(target) in one_line_error(err, "evaluate")


# ------------------------------------------------------------------------------- info


def test_info_names_each_data_folder_by_its_content(
    mnist_dir: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    for folder, dataset, other in ((mnist_dir, "mnist", "fashion-mnist"),
                                   (fashion_dir, "fashion-mnist", "mnist")):  # fmt: skip
        code, out, err = finish(start(["info", "--data-dir", folder], cwd=tmp_path))
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert f"{dataset} data: {folder}" in lines
        assert f"{other} data: not found ({folder} holds the {dataset} files, by their MD5)" in (
            lines
        )


# --------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_sigterm_to_torchrun_saves_the_run_once_and_every_process_exits(
    data: Path, site: Path, tmp_path: Path
) -> None:
    from lenet5.training.distributed import STOP_CHECK_EVERY as every

    # Under DDP the processes agree on a stop every `every` batches: epochs of twice that
    # many batches, a signal in the first half, and the run stops after batch `every`.
    batch_size, signal_step = 256 // (2 * 2 * every), max(1, every // 2)
    out, ready = tmp_path / "run", tmp_path / f"rank 0 reached step {signal_step}"
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "lenet5")  # fmt: skip
    args = ["train", "--data-dir", data, "--epochs", "2", "--batch-size", str(batch_size),
            "--device", "cpu", "--val-every", "0", "--out", out]  # fmt: skip
    env = signalled(site, f"@{signal_step}", LENET5_TEST_READY=str(ready), PYTHONWARNINGS="ignore")
    process = start([*args, "--callbacks", SIGNAL_CALLBACK], cwd=tmp_path, env=env,
                    launcher=torchrun)  # fmt: skip
    wait_for(ready, process)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to both workers
    _, _, err = finish(process)
    # torchrun itself ends with its own traceback (SignalException) and code 1; the workers
    # stopped on their own, within torchrun's 30 s, after the same batch.
    assert "SIGKILL" not in err, err
    assert err.count("SIGTERM received: stopping after this batch") == 1, err  # rank 0 only
    name = f"epoch-0001-batch-{every:06d}"
    assert err.count(f"Interrupted at epoch 1, batch {every} of {2 * every}; checkpoint ") == 1
    assert f"torchrun --nproc_per_node=2 -m lenet5 train --resume {out} --data-dir {data}" in err
    assert names(out / "checkpoints") == [name, "latest"]  # saved once, by rank 0
    assert load_checkpoint(out / "checkpoints")[1]["world_size"] == 2
    assert not (out / ".lock.owner").exists()
    resumed = start(["train", "--resume", out, "--data-dir", data], cwd=tmp_path,
                    env=environment(PYTHONWARNINGS="ignore"), launcher=torchrun)  # fmt: skip
    code, stdout, err = finish(resumed)
    assert code == 0, err
    assert stdout.count("Final | Test Accuracy: ") == 1
    assert names(out / "checkpoints") == ["epoch-0001", "epoch-0002", "latest"]
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
