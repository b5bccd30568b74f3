"""``lenet5 info``: versions, devices, and where data, weights and callbacks are found.

A data folder is reported for the dataset its files are, by their content (MD5): MNIST and
Fashion-MNIST use the same file names.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ._errors import EXIT_OK, warn_line
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
    from ..data import DATA_DIR_ENV
    from ..training.plugins import available_callbacks

    print(f"lenet5 {__version__} (Python {platform.python_version()}, {platform.platform()})")
    cuda = torch.cuda.is_available()
    print(
        f"torch {torch.__version__}; CUDA available: {cuda}"
        + (f" ({torch.cuda.get_device_name(0)})" if cuda else "")
    )
    print(f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV, '(not set)')}")
    for name in DATASET_NAMES:
        print(f"{name} data: {_data_folder(args.data_dir, name)}")
    for name, entry in weights.registry().items():
        print(f"weights {name}: {entry.path} ({entry.dataset}, {entry.test_accuracy:.2f}%)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = available_callbacks()
    print("callbacks: " + ", ".join(f"{n} ({src})" for n, src in names.items()))
    for w in caught:
        warn_line("lenet5 info", w.message)
    return EXIT_OK


def _data_folder(root: Path | None, name: str) -> str:
    """Where ``name``'s files are, told by their content: both datasets use the same file
    names, so a folder counts only for the dataset whose MD5s its files have."""
    from ..data import DataError, find_data_dir, identify_dataset

    try:
        folder = find_data_dir(root, name)
    except DataError as exc:
        return f"not found ({exc})"
    found = identify_dataset(folder)
    if found == name:
        return str(folder)
    if found is not None:
        return f"not found ({folder} holds the {found} files, by their MD5)"
    return f"{folder} (files that are not the official release: their MD5s are unknown)"
