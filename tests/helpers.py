"""Helpers shared by the test modules (imported as ``from helpers import ...``).

``tests/`` is on ``sys.path`` because ``tests/conftest.py`` is there (its folder is put
first); the folders below it are packages (``tests/training/__init__.py``...), so their
test modules are ``training.test_checkpoint`` and the like, and ``from helpers import``
works in every one of them. Fixtures shared by several files are in the conftest files;
the command line's helpers are in ``cli_helpers.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn
from torch.utils.data import IterableDataset

from lenet5 import Callback, Trainer
from lenet5.data import ImageSet
from lenet5.training.state import TrainState

#: The repository's root folder.
REPO = Path(__file__).resolve().parent.parent

#: Tests that need CUDA.
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

#: Tests that need the ``onnx`` extra (onnx and onnxruntime).
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")),
    reason="the onnx extra is not installed",
)


# ------------------------------------------------------------------ trainers and weights


def quiet(model: nn.Module | None = None, **kwargs: Any) -> Trainer[Any]:
    """A CPU trainer that prints nothing."""
    return Trainer(model, **{"verbose": False, "device": "cpu", **kwargs})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a model's state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts have the same keys and bitwise equal tensors."""
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    """Two models have the same state dict keys, in order, and bitwise equal tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), f"{name} differs"


def weights_differ(a: nn.Module, b: nn.Module) -> bool:
    """Whether any tensor of two models' state dicts differs."""
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


def without_times(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """A fit's history without the epoch times (which differ from run to run)."""
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


#: A recipe with augmentation, averaging and a schedule, two epochs.
AUGMENTED_RECIPE = dict(
    epochs=2,
    batch_size=64,
    optimizer="adamw",
    lr=3e-3,
    scheduler="onecycle",
    label_smoothing=0.05,
    ema_decay=0.9,
    augment="affine,elastic(alpha=8,sigma=3)",
    val_every=1,
    verbose=False,
)


# ------------------------------------------------------------ stopping a fit, as a user


class StopAtBatch(Callback):
    """Stops the fit after batch ``batch`` (counted from 1) of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch and state.batch_in_epoch == self.batch:
            state.stop("stopped by the test")


class StopAtStep(Callback):
    """Stops the run after optimisation step ``step`` (mid-epoch, as Ctrl-C would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, state: TrainState) -> None:
        if state.global_step == self.step:
            state.stop("simulated Ctrl-C")


class StopAfter(Callback):
    """Stops the run at the end of epoch ``epoch``, as an interruption would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            state.stop("simulated interruption")


def no_temp_files(folder: Path) -> list[Path]:
    """The hidden or ``.tmp`` files and folders under ``folder`` (a save left them)."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------- data


def examples(data: ImageSet, n: int) -> list[tuple[torch.Tensor, int]]:
    """The first ``n`` examples as a plain list of ``(image (1, 28, 28), label)`` items."""
    return [(data.images[i].unsqueeze(0), int(data.labels[i])) for i in range(n)]


class Stream(IterableDataset[tuple[torch.Tensor, int]]):
    """An iterable dataset without a length: the examples of an ImageSet in order, ``n`` of
    them (all by default; more than there are starts over from the first)."""

    def __init__(self, data: ImageSet, n: int | None = None) -> None:
        items = examples(data, len(data))
        self.items = [items[i % len(items)] for i in range(len(data) if n is None else n)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        return iter(self.items)


def float_batch(images: ImageSet, n: int = 16) -> torch.Tensor:
    """The first ``n`` images as floats in [0, 1], shaped ``(n, 1, 28, 28)``."""
    return images.images[:n].float().div(255).unsqueeze(1)


def seeded_generator(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------- files and JSON


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


def strict_json(text: str) -> Any:
    """Parse ``text`` refusing NaN and the infinities, as jq and browsers do."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------ pictures


def draw_digit(
    digit: int, path: Path, *, size: int, dark_on_light: bool, colour: tuple[int, int, int]
) -> Path:
    """Hand-draw a thick-stroked digit (0, 1 or 7) as a person would with a mouse."""
    shapes: dict[int, list[tuple[str, Any]]] = {
        0: [("ellipse", (0.28, 0.12, 0.72, 0.88))],
        1: [("line", [(0.5, 0.1), (0.5, 0.9)])],
        7: [("line", [(0.25, 0.15), (0.75, 0.15), (0.42, 0.9)])],
    }
    strokes = shapes[digit]
    paper = (255, 255, 255) if dark_on_light else (0, 0, 0)
    image = Image.new("RGB", (size, int(size * 1.3)), paper)
    draw = ImageDraw.Draw(image)
    w, h = image.size
    width = max(2, size // 9)
    for kind, coords in strokes:
        if kind == "ellipse":
            x0, y0, x1, y1 = coords
            draw.ellipse((x0 * w, y0 * h, x1 * w, y1 * h), outline=colour, width=width)
        else:
            draw.line([(x * w, y * h) for x, y in coords], fill=colour, width=width, joint="curve")
    image.save(path)
    return path


def draw_one(path: Path, *, ink: int = 230, paper: int = 20) -> Image.Image:
    """An 8-bit picture of a "1": a slanted stroke."""
    picture = Image.new("L", (60, 80), paper)
    ImageDraw.Draw(picture).line([(30, 8), (22, 72)], fill=ink, width=7)
    picture.save(path)
    return picture


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A real, valid PNG of ``width x height`` black 1-bit pixels: kilobytes on disk, up to
    hundreds of megabytes once decoded (what Pillow's decompression-bomb guard is for)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def png_bombs(folder: Path) -> tuple[Path, Path]:
    """One bomb at each level of Pillow's guard: above MAX_IMAGE_PIXELS (Pillow warns) and
    above twice that (Pillow raises)."""
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, which the sizes assume
    return (
        png_bomb(folder / "bomb-warning.png", 10_000, 10_000),
        png_bomb(folder / "bomb-error.png", 20_000, 20_000),
    )


@contextlib.contextmanager
def hostile_files(tmp_path: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    """Real files of every kind that must be refused, each with the message expected (and
    ``good.png``, a "1", beside them): the ``hostile`` fixture of ``tests/conftest.py``."""
    good = tmp_path / "good.png"
    draw_one(good)
    data = good.read_bytes()
    warning, error = png_bombs(tmp_path)
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    for i in range(60, len(corrupt) - 20):  # the image data, not the signature or IHDR
        corrupt[i] ^= 0x5A
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(numpy.full((20, 20), numpy.nan, numpy.float32)).save(tmp_path / "nan.tif")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder.png").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "socket.png"))
    unopened = "not a regular file but {}; it was not opened"
    bomb = "refused as a possible decompression bomb: it declares {:,} pixels, more than "
    bomb += "PIL.Image.MAX_IMAGE_PIXELS (89,478,485)"
    yield {
        "warning": (warning, bomb.format(100_000_000)),
        "error": (error, bomb.format(400_000_000)),
        "truncated": (tmp_path / "truncated.png", "not a readable image (image file is truncated)"),
        "corrupt": (tmp_path / "corrupt.png", "not a readable image ("),
        "empty": (tmp_path / "empty.png", "the file is empty (0 bytes)"),
        "nan": (tmp_path / "nan.tif", "the image holds NaN or infinite values"),
        "fifo": (tmp_path / "fifo.png", unopened.format("a named pipe (FIFO)")),
        "folder": (tmp_path / "folder.png", unopened.format("a folder")),
        "socket": (tmp_path / "socket.png", unopened.format("a socket")),
        "device": (Path(os.devnull), unopened.format("a character device")),
        "missing": (tmp_path / "missing.png", "file not found"),
    }
    sock.close()
