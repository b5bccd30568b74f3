"""``lenet5 info``: versions, devices, and where data, weights and callbacks are found."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ._errors import EXIT_OK
from ._parser import DATASET_NAMES

__all__ = ["register"]


def register(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``lenet5 info`` to the sub-commands."""
    parser = commands.add_parser(
        "info",
        parents=parents,
        help="versions, devices, and where data and weights are found",
        description="Print what the installation sees: versions, whether CUDA is available, "
        "where the datasets are found, the bundled weights and the callback names.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="folder to check for data (default: $LENET5_DATA_DIR)",
    )
    parser.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    """``lenet5 info``."""
    import platform
    import warnings

    import torch

    from .. import weights
    from ..data import DATA_DIR_ENV, DataError, find_data_dir
    from ..training.plugins import available_callbacks

    print(f"lenet5 {__version__} (Python {platform.python_version()}, {platform.platform()})")
    cuda = torch.cuda.is_available()
    print(
        f"torch {torch.__version__}; CUDA available: {cuda}"
        + (f" ({torch.cuda.get_device_name(0)})" if cuda else "")
    )
    print(f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV, '(not set)')}")
    for name in DATASET_NAMES:
        try:
            where = str(find_data_dir(args.data_dir, name))
        except DataError as exc:
            where = f"not found ({exc})"
        print(f"{name} data: {where}")
    for name, entry in weights.registry().items():
        print(f"weights {name}: {entry.path} ({entry.dataset}, {entry.test_accuracy:.2f}%)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = available_callbacks()
    print("callbacks: " + ", ".join(f"{n} ({src})" for n, src in names.items()))
    for w in caught:
        print(f"warning: {w.message}")
    return EXIT_OK
