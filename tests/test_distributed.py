"""Data-parallel training with torch.distributed: real processes, gloo on the CPU.

Each multi-process test starts ``torchrun --standalone --nproc_per_node=2`` (two processes on
this machine, one thread each) on a small worker script, and compares what the processes
wrote with a single-process run in this one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lenet5 import Trainer
from lenet5.data import ImageSet
from lenet5.training import ConfigError
from lenet5.training.distributed import (
    DistributedError,
    ShardedBatchSampler,
    lost_contact,
    resolve_strategy,
    shard,
    steps_per_epoch,
)

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from lenet5 import Trainer
    from lenet5.callbacks import Callback, Checkpoint
    from lenet5.data import load_mnist

    args = json.loads(sys.argv[1])
    train = load_mnist(args["data"]).subset(slice(0, args["n"]))
    val = load_mnist(args["data"], split="test").subset(slice(0, 501))

    class Crash(Callback):
        def on_batch_end(self, state):
            if state.rank == args.get("crash_rank") and state.global_step == 5:
                if args.get("hard"):
                    os._exit(3)  # dies without a word, like a killed process
                raise RuntimeError("boom on purpose")

    class StopAfter(Callback):
        def on_epoch_end(self, state):
            if state.epoch == args.get("stop_after"):
                state.stop("test")

    class Ranks(Callback):
        rank_zero_only = True
        def on_fit_start(self, state):
            open(os.path.join(args["out"], f"logger-ran-on-{state.rank}"), "w").close()

    callbacks = [Crash(), StopAfter(), Ranks()]
    if args.get("checkpoints"):
        callbacks.append(Checkpoint(args["checkpoints"]))
    trainer = Trainer(
        callbacks=callbacks,
        epochs=args["epochs"],
        batch_size=args["batch_size"],
        val_every=1,
        verbose=False,
        device="cpu",
        dist_timeout=args.get("timeout", 60),
        ema_decay=args.get("ema", 0.0),
    )
    state = trainer.fit(train, val, resume=args.get("resume"))
    torch.save(
        {
            "weights": trainer.model.state_dict(),
            "history": state.history,
            "world_size": state.world_size,
        },
        os.path.join(args["out"], f"rank{state.rank}.pt"),
    )
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def torchrun(
    tmp_path: Path, args: dict[str, object], *, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    import json

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            json.dumps(args),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=tmp_path,
    )


def _args(mnist_dir: Path, out: Path, **extra: object) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    return {"data": str(mnist_dir), "out": str(out), "n": 2000, "epochs": 2, **extra}


def _single(train: ImageSet, val: ImageSet, **config: object) -> Trainer:
    trainer = Trainer(val_every=1, verbose=False, device="cpu", **config)  # type: ignore[arg-type]
    trainer.fit(train, val)
    return trainer


# ----------------------------------------------------------------- unit level


def test_shards_cover_each_global_batch_once() -> None:
    generator = torch.Generator().manual_seed(3)
    size, batch, world = 103, 8, 3
    samplers = [ShardedBatchSampler(size, batch, r, world, torch.Generator()) for r in range(3)]
    for sampler in samplers:
        sampler.generator.set_state(generator.get_state())
    per_rank = [list(s) for s in samplers]
    assert {len(p) for p in per_rank} == {steps_per_epoch(size, batch, world)} == {5}
    perm = torch.randperm(size, generator=generator).tolist()
    for step in range(5):
        merged = [i for rank in range(world) for i in per_rank[rank][step]]
        assert merged == perm[step * 24 : (step + 1) * 24]


def test_steps_drop_a_last_batch_too_small_to_share() -> None:
    assert steps_per_epoch(100, 32, 1) == 4
    assert steps_per_epoch(65, 32, 2) == 1  # 1 example left for 2 processes: dropped
    assert steps_per_epoch(66, 32, 2) == 2
    assert shard(torch.arange(5), 1, 2).tolist() == [3, 4]


def test_ddp_without_a_launcher_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_strategy("auto") == "single"
    with pytest.raises(DistributedError, match="torchrun --nproc_per_node"):
        resolve_strategy("ddp")
    with pytest.raises(ConfigError, match="unknown strategy 'dpp'"):
        Trainer(strategy="dpp")
    with pytest.raises(ConfigError, match="dist_timeout must be a positive number"):
        Trainer(dist_timeout=0)


def test_a_failed_collective_is_explained() -> None:
    error = lost_contact(RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:1234"), 0)
    assert isinstance(error, DistributedError)
    assert "lost contact with the other training processes" in str(error)
    unrelated = ValueError("bad value")
    assert lost_contact(unrelated, 0) is unrelated


# ------------------------------------------------------------ two processes


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_global_batch(
    tmp_path: Path, mnist_dir: Path, train_2k: ImageSet, mnist_test: ImageSet
) -> None:
    # 2 x 16 per step = the single process's 32; 4 epochs of 63 steps, validation each epoch.
    done = torchrun(tmp_path, _args(mnist_dir, tmp_path / "ddp", batch_size=16, ema=0.99, epochs=4))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for name, tensor in ranks[0]["weights"].items():
        assert torch.equal(tensor, ranks[1]["weights"][name]), name  # bitwise, on every rank
    single = _single(
        train_2k, mnist_test.subset(slice(0, 501)), epochs=4, batch_size=32, ema_decay=0.99
    )
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["weights"][name], tensor, atol=1e-5, rtol=1e-4)
    # Metrics are reduced over the processes: the same numbers as one process sees.
    for got, want in zip(ranks[0]["history"], single.state.history, strict=True):  # type: ignore[union-attr]
        assert got["val_accuracy"] == pytest.approx(want["val_accuracy"])
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5)
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got["accuracy"] == pytest.approx(want["accuracy"])
    # A rank_zero_only callback ran on rank 0 alone.
    assert sorted(p.name for p in (tmp_path / "ddp").glob("logger-ran-on-*")) == ["logger-ran-on-0"]


@pytest.mark.slow
def test_resume_from_the_rank0_checkpoint_ends_like_an_uninterrupted_run(
    tmp_path: Path, mnist_dir: Path
) -> None:
    whole = torchrun(tmp_path, _args(mnist_dir, tmp_path / "whole", batch_size=16, epochs=3))
    assert whole.returncode == 0, whole.stderr[-3000:]
    ckpt = tmp_path / "ckpt"
    first = torchrun(
        tmp_path,
        _args(
            mnist_dir,
            tmp_path / "first",
            batch_size=16,
            epochs=3,
            stop_after=2,
            checkpoints=str(ckpt),
        ),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert (ckpt / "latest").is_file()
    resumed = torchrun(
        tmp_path,
        _args(mnist_dir, tmp_path / "resumed", batch_size=16, epochs=3, resume=str(ckpt)),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = torch.load(tmp_path / "whole" / "rank0.pt")["weights"]
    for rank in (0, 1):
        got = torch.load(tmp_path / "resumed" / f"rank{rank}.pt")["weights"]
        for name in want:
            assert torch.equal(got[name], want[name]), (rank, name)


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path: Path, mnist_dir: Path) -> None:
    start = time.monotonic()
    done = torchrun(
        tmp_path, _args(mnist_dir, tmp_path / "crash", batch_size=16, crash_rank=1), timeout=120
    )
    assert done.returncode != 0
    assert time.monotonic() - start < 90
    assert "boom on purpose" in done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_rank_that_dies_without_torchrun_does_not_hang_the_other(
    tmp_path: Path, mnist_dir: Path
) -> None:
    # No launcher to kill the survivors: the survivor must notice on its own.
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    import json

    port = str(_free_port())
    args = json.dumps(
        _args(mnist_dir, tmp_path / "dies", batch_size=16, crash_rank=1, hard=True, timeout=30)
    )
    procs = []
    for rank in (0, 1):
        env = _env()
        env.update(
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), args],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    start = time.monotonic()
    try:
        _, err0 = procs[0].communicate(timeout=120)
    finally:
        for proc in procs:
            proc.kill()
    assert procs[1].wait() == 3
    assert procs[0].returncode != 0
    assert time.monotonic() - start < 100
    assert "lost contact with the other training processes" in err0, err0[-2000:]


@pytest.mark.slow
def test_torchrun_runs_the_cli_as_is(tmp_path: Path, small_mnist_dir: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "lenet5",
            "train",
            "--data-dir",
            str(small_mnist_dir),
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--val-every",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Only rank 0 logs: one line per epoch, not two.
    assert done.stdout.count("Epoch 1 | Loss:") == 1, done.stdout
    assert done.stdout.count("Final | Test Accuracy:") == 1
    assert (out / "model.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir()) == [
        "epoch-0001",
        "epoch-0002",
    ]
    from lenet5 import LeNet5

    LeNet5.from_pretrained(out)


def test_cli_ddp_without_torchrun_is_a_usage_error(
    small_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helpers import run_main

    code = run_main(
        "train", "--data-dir", small_mnist_dir, "--strategy", "ddp", "--out", tmp_path / "r"
    )
    assert code == 2
    assert "start the run with torchrun" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written
