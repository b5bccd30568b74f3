"""The built-ins that set a run up and pace it: seeding, device, timing, validation schedule."""

from __future__ import annotations

import os
import random
import time

import torch

from ..._hints import warn
from ...data import ImageSet
from ...devices import DeviceError, resolve_device
from ..state import TrainState
from ._base import Callback

__all__ = ["DevicePlacement", "PeriodicValidation", "Seeding", "Timer"]


class Seeding(Callback):
    """Seed every random number generator and, if asked, make the run deterministic.

    Seeds Python's ``random``, NumPy (when installed), torch (CPU and CUDA) and the trainer's
    shuffling generator. With ``deterministic`` it also calls
    ``torch.use_deterministic_algorithms(True)``, turns off cuDNN benchmarking and sets
    ``CUBLAS_WORKSPACE_CONFIG``, which cuBLAS reads when CUDA starts: if CUDA was already
    initialised without it, a warning says so.

    Args:
        seed: Overrides ``config.seed`` when given.
        deterministic: Overrides ``config.deterministic`` when given.
    """

    order = -100

    def __init__(self, seed: int | None = None, deterministic: bool | None = None) -> None:
        self.seed = seed
        self.deterministic = deterministic
        self._previous: tuple[bool, bool, bool] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        seed = self.seed if self.seed is not None else state.config.seed
        deterministic = (
            self.deterministic if self.deterministic is not None else state.config.deterministic
        )
        if deterministic:
            # Process-wide switches: remember them, and put them back when the fit ends.
            self._previous = (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark,
            )
            self.make_deterministic()
        if seed is None:
            # The global generators are left alone, but the shuffling generator is new and
            # would start from torch's fixed default seed: every unseeded run would then
            # see the batches in the same order.
            state.generator.seed()
            return
        random.seed(seed)
        try:
            import numpy as np

            np.random.seed(seed % 2**32)
        except ImportError:  # pragma: no cover - numpy comes with torchvision
            pass
        torch.manual_seed(seed)  # also seeds every CUDA device
        # Each rank shuffles with the same generator so that shards are disjoint.
        state.generator.manual_seed(seed)

    def on_fit_end(self, state: TrainState) -> None:
        self._restore()

    def on_exception(self, state: TrainState) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            algorithms, cudnn_deterministic, cudnn_benchmark = self._previous
            torch.use_deterministic_algorithms(algorithms)
            torch.backends.cudnn.deterministic = cudnn_deterministic
            torch.backends.cudnn.benchmark = cudnn_benchmark
            self._previous = None

    @staticmethod
    def make_deterministic() -> None:
        """Switch torch to deterministic algorithms (warns if CUDA started too early)."""
        if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
            initialized = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
            if torch.cuda.is_available() and initialized:
                warn(
                    "deterministic=True but CUDA was initialised before CUBLAS_WORKSPACE_CONFIG "
                    "was set, so cuBLAS may not be deterministic; set "
                    "CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before starting Python"
                )
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


class DevicePlacement(Callback):
    """Pick the training device and move the model, the resident training data and every
    resident validation set onto it.

    Args:
        device: Overrides ``config.device`` when given (``"auto"`` picks CUDA when present).
    """

    order = -90

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = device

    def on_fit_start(self, state: TrainState) -> None:
        device = resolve_device(self.device if self.device is not None else state.config.device)
        if state.world_size > 1 and device.type == "cuda" and device.index is None:
            if state.local_rank >= torch.cuda.device_count():
                raise DeviceError(
                    f"process {state.rank} (local rank {state.local_rank}) has no GPU of its "
                    f"own: {torch.cuda.device_count()} present; start at most that many "
                    "processes per machine (--nproc_per_node), or train on the CPU "
                    "(--device cpu)"
                )
            device = torch.device("cuda", state.local_rank)  # one GPU per process
        state.device = device
        state.model.to(device)
        if isinstance(state.train_data, ImageSet):
            state.train_data = state.train_data.to(device)
        for name, data in state.val_sets.items():  # every validation set, not the first
            if isinstance(data, ImageSet):
                state.val_sets[name] = data.to(device)


class Timer(Callback):
    """Record ``epoch_seconds`` (wall time of each epoch, validation included) in the metrics."""

    order = -80

    def __init__(self) -> None:
        self._start = 0.0

    def on_epoch_start(self, state: TrainState) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        if state.device.type == "cuda":
            torch.cuda.synchronize(state.device)
        state.metrics["epoch_seconds"] = time.perf_counter() - self._start


class PeriodicValidation(Callback):
    """Validate every ``every`` epochs and after the last epoch.

    Args:
        every: Overrides ``config.val_every`` when given; ``0`` turns validation off.
    """

    order = -50

    def __init__(self, every: int | None = None) -> None:
        self.every = every

    def on_epoch_start(self, state: TrainState) -> None:
        every = self.every if self.every is not None else state.config.val_every
        if every > 0 and (state.epoch % every == 0 or state.epoch == state.config.epochs):
            state.validate = True
