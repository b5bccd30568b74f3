"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` and DDP.

Launch with ``torchrun --nproc_per_node=N -m lenet5 train ...`` (or any launcher that sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``). Every process
keeps the whole training set resident and draws the same permutation each epoch; a step's
*global* batch is ``batch_size * world_size`` consecutive examples of it, and rank ``r`` trains
on the ``r``-th slice. DDP averages the gradients, and each rank's loss is weighted by its
share of the global batch, so a run on ``W`` processes follows the same mathematics as one
process with ``batch_size * W`` (up to floating-point summation order).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "STOP_CHECK_EVERY",
    "STOP_REASON_BYTES",
    "DistributedError",
    "ProcessGroup",
    "ShardedBatchSampler",
    "global_batch",
    "is_main_process",
    "launch_ranks",
    "launched_by_torchrun",
    "lost_contact",
    "resolve_strategy",
    "shard",
    "steps_per_epoch",
    "wrap_ddp",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: Under DDP, the processes agree on a stop (:meth:`ProcessGroup.first_stop`, called by the
#: trainer) after every this many batches of an epoch, after its last batch and after every
#: epoch, so that a ``state.stop()`` on any one process takes effect on all of them after the
#: same batch. Each agreement is one all-reduce of a single number (on 2 CPU processes with
#: gloo about 0.5 ms, against 15 ms for a step of 16 images per process on a loaded 2-core
#: machine): every 8 batches keeps it below 0.5% of the training time.
STOP_CHECK_EVERY = 8

#: The longest stop reason (in UTF-8 bytes) that :meth:`ProcessGroup.first_stop` passes on.
STOP_REASON_BYTES = 127


class DistributedError(RuntimeError):
    """Distributed training cannot start, or lost one of its processes."""


def launched_by_torchrun() -> bool:
    """True when the launcher's environment variables say this is one of several processes."""
    return all(name in os.environ for name in _ENV) and int(os.environ["WORLD_SIZE"]) > 1


def resolve_strategy(strategy: str) -> str:
    """``"single"`` or ``"ddp"``: ``"auto"`` is DDP exactly when launched by ``torchrun``.

    Raises:
        DistributedError: For ``"ddp"`` without the launcher's environment variables.
    """
    if strategy == "auto":
        return "ddp" if launched_by_torchrun() or _group_ready() else "single"
    if strategy == "ddp" and not (_group_ready() or all(n in os.environ for n in _ENV)):
        missing = [n for n in _ENV if n not in os.environ]
        raise DistributedError(
            f"strategy='ddp' needs the environment of a distributed launcher ({', '.join(missing)} "
            "not set); start the run with torchrun, e.g. torchrun --nproc_per_node=2 -m lenet5 "
            "train ..."
        )
    return strategy


def launch_ranks() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` of this process, from an existing process group or
    the launcher's environment."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local_rank
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), local_rank


def lost_contact(exc: BaseException, rank: int) -> BaseException:
    """A :class:`DistributedError` that explains ``exc`` if it is a failed collective.

    When one process dies, the others find out inside a collective (a gradient all-reduce,
    a barrier) as a backend error about a closed connection or a timeout, which says
    nothing about the cause; the message here does. Other exceptions are returned as is.
    """
    dist_error = getattr(dist, "DistError", RuntimeError)
    text = str(exc)
    signs = ("gloo", "nccl", "Connection closed", "timed out", "Timed out", "ProcessGroup")
    if not isinstance(exc, dist_error) and not (
        isinstance(exc, RuntimeError) and any(sign in text for sign in signs)
    ):
        return exc
    return DistributedError(
        f"process {rank} lost contact with the other training processes ({text.strip()}). "
        "Another process has probably failed or was stopped: its own error is in its output "
        "(torchrun prints each failed rank's error in its summary)"
    )


def is_main_process() -> bool:
    """False in the processes of a distributed run other than rank 0 (before or during it)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _group_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass
class ProcessGroup:
    """This process's place in the run; joins (and later leaves) the default process group.

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this machine (the CUDA device index).
        backend: ``"nccl"`` (CUDA) or ``"gloo"`` (CPU).
        owned: Whether this object created the process group (and so destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    owned: bool = False

    @classmethod
    def join(cls, device_type: str, timeout: float) -> ProcessGroup:
        """Join the default process group (or use the one the caller already created).

        Args:
            device_type: ``"cuda"`` selects NCCL, anything else gloo.
            timeout: Seconds a collective may wait for the other processes before failing.

        Raises:
            DistributedError: If the group cannot be formed in time.
        """
        if not dist.is_available():
            raise DistributedError("this build of PyTorch has no torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if dist.is_initialized():
            return cls(
                dist.get_rank(),
                dist.get_world_size(),
                local_rank,
                str(dist.get_backend()),
                owned=False,
            )
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:
            raise DistributedError(
                f"could not join the process group ({backend}, rank {os.environ.get('RANK')} of "
                f"{os.environ.get('WORLD_SIZE')} at {os.environ.get('MASTER_ADDR')}:"
                f"{os.environ.get('MASTER_PORT')}): {exc}"
            ) from exc
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, backend, owned=True)

    def all_reduce(self, *tensors: torch.Tensor) -> None:
        """Sum each tensor over the processes, in place (one collective for all of them)."""
        if self.world_size == 1 or not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        dist.all_reduce(flat)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t).to(t.dtype))
            offset += n

    def first_stop(self, reason: str | None) -> str | None:
        """Agree on stopping: the reason of the lowest-ranked process that asks to stop.

        A collective: every process calls it at the same point of the run, with its own
        stop reason or ``None``. It costs one all-reduce of a single number (the lowest
        rank asking); only when some process asks, its reason (cut at
        :data:`STOP_REASON_BYTES`) is broadcast to the others.

        Returns:
            The reason (the same on every process), or ``None`` when no process asks.
        """
        if self.world_size == 1:
            return reason
        device = (
            torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else None
        )
        first = torch.tensor([self.rank if reason is not None else self.world_size], device=device)
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
        src = int(first.item())
        if src == self.world_size:
            return None
        text = torch.zeros(STOP_REASON_BYTES, dtype=torch.uint8)
        if self.rank == src:
            assert reason is not None
            encoded = reason.encode("utf-8")[:STOP_REASON_BYTES]
            text[: len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
        text = text.to(device) if device is not None else text
        dist.broadcast(text, src)
        return bytes(text.tolist()).rstrip(b"\0").decode("utf-8", "replace")

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world_size > 1:
            dist.barrier()

    def leave(self) -> None:
        """Destroy the process group if this object created it."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
            self.owned = False


def global_batch(step: int, size: int, batch_size: int, world_size: int) -> slice:
    """Positions in the epoch's permutation of step ``step``'s global batch (all processes)."""
    start = step * batch_size * world_size
    return slice(start, min(start + batch_size * world_size, size))


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's slice of one global batch of indices (sizes differ by at most one)."""
    if world_size == 1:
        return indices
    return torch.tensor_split(indices, world_size)[rank]


def steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    """Optimisation steps in an epoch of ``n`` examples.

    Under DDP a last global batch smaller than the number of processes is dropped: some
    process would have no example to train on.
    """
    global_batch = batch_size * world_size
    full, rest = divmod(n, global_batch)
    return full + (1 if rest >= world_size else 0)


class ShardedBatchSampler(Sampler[list[int]]):
    """Batches of indices for one rank: its slice of each global batch of a permutation.

    The permutation comes from ``generator``, which every rank seeds alike, so the ranks
    agree on the global batches without talking to each other.

    Args:
        size: Number of examples.
        batch_size: Examples per process and step.
        rank: This process's rank.
        world_size: Number of processes.
        generator: Draws the permutation when iteration starts.

    Attributes:
        start: Batches to leave out at the start of each iteration (those a resumed run
            already did): their indices are drawn, but never yielded, so their examples are
            never read.
    """

    def __init__(
        self, size: int, batch_size: int, rank: int, world_size: int, generator: torch.Generator
    ) -> None:
        self.size = size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.generator = generator
        self.start = 0

    def __len__(self) -> int:
        return steps_per_epoch(self.size, self.batch_size, self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        perm = torch.randperm(self.size, generator=self.generator)
        for step in range(self.start, len(self)):
            positions = global_batch(step, self.size, self.batch_size, self.world_size)
            yield shard(perm[positions], self.rank, self.world_size).tolist()


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> Any:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` for ``device``."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index or 0])
    return DistributedDataParallel(model)
