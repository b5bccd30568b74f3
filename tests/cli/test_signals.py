"""Signals to a running command, each a real process: Ctrl-C at a chosen batch (saved, and
resumed to the same weights), a second signal (aborted without saving), the scheduler's
SIGTERM and SIGUSR1, a signal during the start-up, SIGTERM to torchrun.

The signals are sent at a chosen batch by a callback plugin installed as pip would
(``cli_helpers.SIGNAL_PLUGIN``), or by the test at a chosen moment of the start-up.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from cli_helpers import (
    SIGNAL_CALLBACK,
    STEPS,
    environment,
    finish,
    names,
    one_line_error,
    run_main,
    signalled,
    start,
    train_args,
    wait_for,
    write_signal_plugin,
)
from lenet5.data import DATA_DIR_ENV
from lenet5.training.checkpoint import load_checkpoint
from lenet5.weights import read_safetensors

# ----------------------------------------------------------------- signals during training


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(folder / "model.safetensors")[0]


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


def _signalled_train(
    data: Path | None, out: Path, spec: str, *, debug: bool = False
) -> subprocess.Popen[str]:
    """``lenet5 train`` in a real process whose callback plugin sends it the signals of
    ``spec`` at step 3; the data from ``--data-dir``, or (``None``) from the environment."""
    site = write_signal_plugin(out.parent / "site")
    args: list[str | Path] = ["--debug"] if debug else []
    args += ["train", "--epochs", "2", "--device", "cpu", "--val-every", "0", "--quiet"]
    args += ["--callbacks", SIGNAL_CALLBACK, "--out", out]
    extra = {"LENET5_TEST_SIGNALS": spec}
    if data is None:
        extra[DATA_DIR_ENV] = str(out.parent / "data")
    else:
        args += ["--data-dir", data]
    return start(args, cwd=out.parent, env=environment([site], **extra))


def test_an_interrupted_run_with_data_from_the_environment_resumes_without_data_dir(
    data: Path, tmp_path: Path
) -> None:
    shutil.copytree(data, tmp_path / "data")
    code, _, err = finish(_signalled_train(None, tmp_path / "run", "SIGINT@3"))
    assert code == 130, err
    assert "Traceback" not in err
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch-0001-batch-000003"
    assert (
        f"Interrupted at epoch 1, batch 3 of 8; checkpoint {checkpoint} saved. Resume with:\n"
        f"  lenet5 train --resume {tmp_path / 'run'}\n"  # the data folder is not recorded
    ) in err


def test_debug_shows_the_traceback_of_an_aborted_run(data: Path, tmp_path: Path) -> None:
    code, _, err = finish(_signalled_train(data, tmp_path / "run", "SIGINT,SIGINT@3", debug=True))
    # Uncaught, with the command's signal handlers still in place: Python's exit code 1.
    assert code == 1, err
    assert "lenet5 train: aborted by Ctrl-C, without saving" in err
    assert "Traceback (most recent call last)" in err


# ------------------------------------------------------------- signals during the start-up


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


# ----------------------------------------------------------------- outside the main thread


def test_the_command_line_runs_in_a_worker_thread(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signal handlers can be set in the main thread only: elsewhere the commands run
    without them (a notebook or a server calling ``lenet5.cli.main`` from a thread)."""
    codes: list[int] = []
    run = tmp_path / "run"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def commands() -> None:
        codes.append(run_main("info"))
        args = ("--data-dir", small_mnist_dir, "--epochs", "1", "--val-every", "0")
        codes.append(run_main("train", *args, "--quiet", "--out", run))

    thread = threading.Thread(target=commands)
    thread.start()
    thread.join(300)
    assert not thread.is_alive()
    assert codes == [0, 0], capsys.readouterr().err
    assert (run / "model.safetensors").is_file()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # none touched


# -------------------------------------------------------------------------------- torchrun


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
