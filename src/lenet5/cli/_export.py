"""``lenet5 export``: TorchScript or ONNX files, checked against the model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import load_model
from ._errors import EXIT_OK, UsageError
from ._parser import EXPORT_FORMATS, add_weights_flag

__all__ = ["register"]


def register(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``lenet5 export`` to the sub-commands."""
    parser = commands.add_parser(
        "export",
        parents=parents,
        help="export weights to TorchScript or ONNX",
        description="Export a model with a dynamic batch dimension; the file is checked "
        "against the eager model before it is put in place.",
    )
    parser.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, help="the kind of file to write"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="the file to write")
    add_weights_flag(parser)
    parser.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """``lenet5 export``."""
    if args.out.is_dir():
        raise UsageError(f"--out must be a file name, but {args.out} is a folder")
    from ..export import export_model

    model = load_model(args.weights, "cpu")
    path = export_model(model, args.out, format=args.format)
    print(f"Wrote {path} ({args.format}, dynamic batch; outputs checked against the model)")
    return EXIT_OK
