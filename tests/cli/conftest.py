"""Fixtures of the command-line tests: a tiny data folder and the signal plugin's site."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cli_helpers import write_signal_plugin
from lenet5 import ImageSet


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
