"""Helpers shared by the test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lenet5 import Callback, Trainer
from lenet5.training.state import TrainState


def quiet(model: nn.Module | None = None, **kwargs: Any) -> Trainer[Any]:
    """A CPU trainer that prints nothing."""
    return Trainer(model, **{"verbose": False, "device": "cpu", **kwargs})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a model's state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts have the same keys and bitwise equal tensors."""
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


class StopAtBatch(Callback):
    """Stops the fit after batch ``batch`` (counted from 1) of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch and state.batch_in_epoch == self.batch:
            state.stop("stopped by the test")


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """``folder`` as a real tmpfs mounted with ``options`` (``"size=1m"``, ``"ro,size=64k"``),
    unmounted afterwards; the test is skipped where mounting is not allowed (not root)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a small file system here (needs root and CAP_SYS_ADMIN): "
            f"{mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
