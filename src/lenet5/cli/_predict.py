"""``lenet5 predict``: classify picture files."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import dumps_json
from ._common import check_backend, check_device
from ._errors import EXIT_FAILURE, EXIT_OK, UsageError, one_line
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

    paths, unusable = _expand_inputs(args.inputs)
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
    for path, message in [*unusable, *failures]:
        print(f"lenet5 predict: error: {one_line(f'{path}: {message}')}", file=sys.stderr)
    if args.json:
        print(dumps_json([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            others = ", ".join(f"{c.label} {100 * c.probability:.2f}%" for c in r.top_k)
            print(
                f"{r.path}: {r.label} ({100 * r.probability:.2f}%)   top-{len(r.top_k)}: {others}"
            )
    return EXIT_FAILURE if failures or unusable else EXIT_OK


def _expand_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their pictures, sorted) and globs, in the order given, and what
    cannot be used, each with why: nothing is passed over in silence.

    A named path is classified whatever it is (the classifier reports a FIFO, a dangling
    link or a link loop as such). A glob stands for its matches, as if the shell had
    expanded it. In a folder, every entry whose name ends in an image suffix is classified
    or reported (a folder named ``x.png``, a FIFO, a dangling link...); entries without one
    are not pictures by name and are left out. A missing path, an unreadable folder, a
    folder without pictures and a glob that matches nothing are reported, and the rest is
    still classified.
    """
    paths: list[Path] = []
    unusable: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if os.path.lexists(path) or not glob.has_magic(item):
            _add(path, paths, unusable)
            continue
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
        if not matches:
            unusable.append((item, "no files match"))
        for match in matches:
            _add(match, paths, unusable)
    return paths, unusable


def _add(path: Path, paths: list[Path], unusable: list[tuple[str, str]]) -> None:
    """Add a named path (a folder: its pictures) to ``paths``, or say why it cannot be."""
    from ..preprocess import IMAGE_SUFFIXES

    if not path.is_dir():
        if os.path.lexists(path):
            paths.append(path)  # a file, or a dangling link, a FIFO...: reported as such
        else:
            unusable.append((str(path), "no such file or folder"))
        return
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        unusable.append((str(path), f"cannot list the folder ({exc.strerror or exc})"))
        return
    found = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        unusable.append(
            (str(path), f"holds no images ({suffixes}); give image files or another folder")
        )
    for entry in found:
        if entry.is_dir():
            unusable.append((str(entry), "a folder, not a picture (folders are not searched)"))
        else:
            paths.append(entry)  # the classifier says what else it is
