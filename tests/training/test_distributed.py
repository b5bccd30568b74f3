"""Data-parallel training with torch.distributed: real processes, gloo on the CPU.

Each multi-process test starts ``torchrun --standalone --nproc_per_node=2`` (two processes on
this machine, one thread each) on a small worker script, and compares what the processes
wrote with a single-process run in this one.

Ports are never chosen by "find a free one, release it, hope": ``--standalone`` has torchrun
bind its rendezvous store to port 0 (the system picks, and the store holds it), and the
workers connect to that store (``TORCHELASTIC_USE_AGENT_STORE``), which a test asserts. The
test without a launcher hosts the store itself, on port 0, the same way. No test asserts a
wall-clock bound: a run that hangs is killed, with its process group, after a generous
timeout, and the test fails saying so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from helpers import quiet
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

    class StopOnOneRank(Callback):
        def on_batch_end(self, state):
            if state.rank == args.get("stop_rank") and state.global_step == args.get("stop_step"):
                state.stop(f"asked on rank {state.rank}")

    class Ranks(Callback):
        rank_zero_only = True
        def on_fit_start(self, state):
            open(os.path.join(args["out"], f"logger-ran-on-{state.rank}"), "w").close()

    callbacks = [Crash(), StopAfter(), StopOnOneRank(), Ranks()]
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
            "stopped": (state.epoch, state.batch_in_epoch, state.global_step, state.stop_reason),
            "agent_store": os.environ.get("TORCHELASTIC_USE_AGENT_STORE"),
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
    # Would make torchrun pick the workers' port by binding and releasing one (a race).
    env.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)
    return env


def run_group(
    command: Sequence[str], *, timeout: float, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a session of its own; past ``timeout`` seconds, kill the whole
    session (torchrun and its workers) and fail the test, showing what it printed."""
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{command[2:4]} still running after {timeout} s; stderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(list(command), proc.returncode, out, err)


def torchrun(
    tmp_path: Path, args: dict[str, object], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script), json.dumps(args)]
    return run_group(command, timeout=timeout, env=_env(), cwd=tmp_path)


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


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> dict[str, object]:
    """What rank 0 of an uninterrupted 3-epoch run on 2 processes saved."""
    tmp_path = tmp_path_factory.mktemp("whole")
    done = torchrun(tmp_path, _args(mnist_dir, tmp_path / "whole", batch_size=16, epochs=3))
    assert done.returncode == 0, done.stderr[-3000:]
    saved: dict[str, object] = torch.load(tmp_path / "whole" / "rank0.pt")
    # The workers used the launcher's store: no port was picked by binding and releasing.
    assert saved["agent_store"] == "True"
    return saved


def _resume_and_compare(tmp_path: Path, mnist_dir: Path, ckpt: Path, want: object) -> None:
    resumed = torchrun(
        tmp_path,
        _args(mnist_dir, tmp_path / "resumed", batch_size=16, epochs=3, resume=str(ckpt)),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert isinstance(want, dict)
    for rank in (0, 1):
        got = torch.load(tmp_path / "resumed" / f"rank{rank}.pt")["weights"]
        for name in want:
            assert torch.equal(got[name], want[name]), (rank, name)


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_uninterrupted")  # one worker: one uninterrupted run
def test_resume_from_the_rank0_checkpoint_ends_like_an_uninterrupted_run(
    tmp_path: Path, mnist_dir: Path, uninterrupted: dict[str, object]
) -> None:
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
    assert (ckpt / "latest").read_text() == "epoch-0002\n"
    _resume_and_compare(tmp_path, mnist_dir, ckpt, uninterrupted["weights"])


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_uninterrupted")  # one worker: one uninterrupted run
def test_a_stop_on_one_rank_stops_every_rank_after_the_same_batch(
    tmp_path: Path, mnist_dir: Path, uninterrupted: dict[str, object]
) -> None:
    from lenet5.training.distributed import STOP_CHECK_EVERY

    # 63 steps per epoch: rank 1 alone asks after step 68, batch 5 of epoch 2; the ranks
    # agree at the next check, after batch 8.
    ckpt = tmp_path / "ckpt"
    args = _args(mnist_dir, tmp_path / "first", batch_size=16, epochs=3, checkpoints=str(ckpt))
    first = torchrun(tmp_path, {**args, "stop_rank": 1, "stop_step": 63 + 5})
    assert first.returncode == 0, first.stderr[-3000:]
    batch = -(-5 // STOP_CHECK_EVERY) * STOP_CHECK_EVERY
    stopped = [torch.load(tmp_path / "first" / f"rank{r}.pt")["stopped"] for r in (0, 1)]
    assert stopped == [(2, batch, 63 + batch, "asked on rank 1")] * 2
    # Saved once, by rank 0: the epoch before, and the mid-epoch checkpoint.
    name = f"epoch-0002-batch-{batch:06d}"
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-0001", name, "latest"]
    assert (ckpt / "latest").read_text() == name + "\n"
    _resume_and_compare(tmp_path, mnist_dir, ckpt, uninterrupted["weights"])


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path: Path, mnist_dir: Path) -> None:
    done = torchrun(
        tmp_path, _args(mnist_dir, tmp_path / "crash", batch_size=16, crash_rank=1), timeout=180
    )
    assert done.returncode != 0
    assert "boom on purpose" in done.stdout + done.stderr


@pytest.mark.slow
def test_a_rank_that_dies_without_torchrun_does_not_hang_the_other(
    tmp_path: Path, mnist_dir: Path
) -> None:
    # No launcher to kill the survivors: the survivor must notice on its own. This test
    # hosts the store the processes meet at, on a port the system picks and the store keeps.
    store = dist.TCPStore(  # type: ignore[attr-defined]
        "127.0.0.1", 0, 2, is_master=True, wait_for_workers=False
    )
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
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
            MASTER_PORT=str(store.port),
            TORCHELASTIC_USE_AGENT_STORE="True",  # connect to this store, host none
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
    try:
        _, err0 = procs[0].communicate(timeout=180)
        assert procs[1].wait(timeout=180) == 3
    except subprocess.TimeoutExpired:
        pytest.fail("the surviving process did not notice the other one's death in 180 s")
    finally:
        for proc in procs:
            proc.kill()
    assert procs[0].returncode != 0
    assert "lost contact with the other training processes" in err0, err0[-2000:]


@pytest.mark.slow
def test_torchrun_runs_the_cli_as_is(tmp_path: Path, small_mnist_dir: Path) -> None:
    out = tmp_path / "run"
    done = run_group(
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
        timeout=300,
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


# ------------------------------------------------------ one process, a launcher's settings


def test_strategy_single_ignores_a_launchers_environment(
    tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    state = quiet(epochs=1, strategy="single").fit(tiny_train)
    assert (state.world_size, state.global_step) == (1, 2)


def test_a_process_group_the_caller_made_is_used_and_left_alone(
    tmp_path: Path, tiny_train: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    from lenet5.training.distributed import is_main_process, launch_ranks

    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = dist.FileStore(str(tmp_path / "store"), 1)  # type: ignore[attr-defined]
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert launch_ranks() == (0, 1, 0)
        assert is_main_process()
        state = quiet(epochs=1, strategy="ddp").fit(tiny_train)
        assert (state.world_size, state.global_step) == (1, 2)
        assert dist.is_initialized()  # the caller's group: not destroyed by the fit
    finally:
        dist.destroy_process_group()
