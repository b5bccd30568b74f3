"""The argument parsers of ``lenet5``: one-line usage errors, defaults shown, no abbreviations.

Also the flags that several commands share (``--data-dir``, ``--weights``, ``--device``...).
Nothing here imports torch: ``--help`` and every usage error answer before it is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from ._errors import EXIT_USAGE

__all__ = [
    "BACKENDS",
    "DATASET_NAMES",
    "EXPORT_FORMATS",
    "CommandParser",
    "HelpFormatter",
    "RootParser",
    "add_backend_flag",
    "add_data_flags",
    "add_device_flag",
    "add_weights_flag",
]

# The names lenet5.data, lenet5.runtime and lenet5.export accept. Those modules load torch,
# so the parser cannot ask them; tests/test_cli.py checks that the lists agree.
DATASET_NAMES = ("mnist", "fashion-mnist")
BACKENDS = ("auto", "torch", "onnxruntime")
EXPORT_FORMATS = ("torchscript", "onnx")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, where it has one worth showing.

    Switches (``--json``) and flags whose default means "not given" (``None``) are left
    alone; their help says what happens without them.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if action.default is None or switch:
            return action.help
        return super()._get_help_string(action)


class RootParser(argparse.ArgumentParser):
    """``lenet5`` itself: no abbreviated flags, defaults shown in the help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # An abbreviation that works today breaks the day a longer flag is added.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


class CommandParser(RootParser):
    """A sub-command's parser: a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        # The usage of a command with twenty flags would bury the one line that matters.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_data_flags(parser: argparse.ArgumentParser, *, dataset_help: str) -> None:
    """``--data-dir``, ``--dataset`` and ``--download``."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="folder with the IDX files (default: $LENET5_DATA_DIR)",
    )
    parser.add_argument("--dataset", choices=DATASET_NAMES, help=dataset_help)
    parser.add_argument(
        "--download",
        action="store_true",
        help="download the dataset with torchvision if it is missing (needs internet)",
    )


def add_weights_flag(parser: argparse.ArgumentParser) -> None:
    """``--weights``: what to load."""
    parser.add_argument(
        "--weights",
        default="DEFAULT",
        help="registry name, folder, .safetensors file or Hub repo id",
    )


def add_device_flag(parser: argparse.ArgumentParser, default: str) -> None:
    """``--device``, checked for its spelling before anything is loaded."""
    parser.add_argument("--device", default=default, help="auto, cpu, cuda or cuda:N")


def add_backend_flag(parser: argparse.ArgumentParser) -> None:
    """``--backend``: the inference engine."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="inference engine: auto (ONNX Runtime on the CPU when lenet5[onnx] is installed, "
        "else PyTorch), torch, or onnxruntime",
    )
