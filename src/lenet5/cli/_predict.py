"""``lenet5 predict``: classify picture files."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import check_backend, check_device
from ._errors import EXIT_FAILURE, EXIT_OK, UsageError
from ._parser import add_backend_flag, add_device_flag, add_weights_flag

__all__ = ["register"]


def register(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``lenet5 predict`` to the sub-commands."""
    parser = commands.add_parser(
        "predict",
        parents=parents,
        help="classify image files",
        description="Classify pictures: PNG, JPEG, BMP..., any size, colour or greyscale, "
        "dark-on-light or light-on-dark. Each is turned into an MNIST-like 28x28 input the "
        "way MNIST was made (see lenet5.preprocess).",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGE|DIR|GLOB", help="image files, folders or globs"
    )
    add_weights_flag(parser)
    parser.add_argument(
        "--top-k", type=int, default=3, metavar="K", help="how many classes to list"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list, one object per image"
    )
    add_device_flag(parser, default="cpu")
    parser.add_argument(
        "--batch-size", type=int, default=256, metavar="N", help="images per forward pass"
    )
    add_backend_flag(parser)
    parser.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """``lenet5 predict``."""
    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_device(args.device)
    from ..devices import resolve_device
    from ..predict import predict_files

    paths = _expand_inputs(args.inputs)
    device = resolve_device(args.device)
    check_backend(args.backend, device)
    results, failures = predict_files(
        paths,
        weights=args.weights,
        top_k=args.top_k,
        device=device,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    for path, message in failures:
        print(f"lenet5 predict: error: {path}: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            others = ", ".join(f"{c.label} {100 * c.probability:.2f}%" for c in r.top_k)
            print(
                f"{r.path}: {r.label} ({100 * r.probability:.2f}%)   top-{len(r.top_k)}: {others}"
            )
    return EXIT_FAILURE if failures else EXIT_OK


def _expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs, in the order given."""
    from ..preprocess import IMAGE_SUFFIXES, ImageError

    paths: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise ImageError(
                    f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}); give image files "
                    "or another folder"
                )
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise ImageError(f"no files match {item!r}")
            paths.extend(matches)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return paths
