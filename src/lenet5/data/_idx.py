"""The bounded IDX reader: MNIST's file format, validated against its header."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ._facts import DataError

__all__ = ["MAX_VALUES", "IdxFile", "read_idx", "read_idx_file"]

_IDX_DTYPES = {0x08: torch.uint8}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# Reads go in chunks, so that memory follows the data actually there, not what a header claims.
_CHUNK = 1 << 22
# No MNIST-format file comes near this; a header promising more is refused before reading.
MAX_VALUES = 1 << 30


@dataclass(frozen=True)
class IdxFile:
    """What :func:`read_idx_file` read: the tensor and the MD5 of the decompressed bytes."""

    tensor: torch.Tensor
    md5: str


def read_idx(
    path: str | os.PathLike[str],
    *,
    md5: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Read an IDX file (gzipped or not) into a tensor.

    The header is read first and validated: the magic number, the element type, the number
    of dimensions, and (with ``image_size``) the image size. Then at most the promised payload
    plus one byte is read, so a file that holds more than its header says (a decompression
    bomb) costs no more memory than an honest one.

    Args:
        path: The file to read. A name ending in ``.gz`` is decompressed.
        md5: If given, the expected MD5 of the decompressed bytes. A mismatch only warns:
            the file is structurally valid, but it is not the official one.
        image_size: If given, an image file must hold images of this ``(rows, cols)``.

    Returns:
        A ``uint8`` tensor with the shape the header gives (``(N,)`` for labels,
        ``(N, rows, cols)`` for images).

    Raises:
        DataError: If the file cannot be read or is truncated, corrupt, oversized or not IDX;
            the message names the file.
    """
    read = read_idx_file(path, image_size=image_size)
    if md5 is not None and read.md5 != md5:
        warnings.warn(
            f"{path}: MD5 of the decompressed data is {read.md5}, expected {md5}; the file is "
            "well-formed but differs from the official release, so results may not be "
            "comparable with published ones",
            stacklevel=2,
        )
    return read.tensor


def read_idx_file(
    path: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None
) -> IdxFile:
    """:func:`read_idx`, returning the MD5 of the decompressed bytes with the tensor."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            header, dims = _read_header(f, path, image_size)
            count = math.prod(dims)
            if path.suffix != ".gz":
                _check_raw_size(path, len(header), count)
            payload = _read_at_most(f, count + 1)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an IDX file") from None
    except PermissionError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: cannot decompress or read ({exc}); the file is truncated or corrupt, "
            "download it again"
        ) from exc
    _check_payload(path, dims, count, len(payload))
    digest = hashlib.md5(header, usedforsecurity=False)
    digest.update(payload)
    tensor = torch.frombuffer(payload, dtype=torch.uint8, count=count) if count else None
    data = tensor.reshape(dims) if tensor is not None else torch.zeros(dims, dtype=torch.uint8)
    return IdxFile(data, digest.hexdigest())


def _read_header(
    f: _Reader, path: Path, image_size: tuple[int, int] | None
) -> tuple[bytes, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: only {len(magic)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DataError(
            f"{path}: bad magic number 0x{magic.hex()}; expected 0x{_IMAGE_MAGIC:08x} (images) "
            f"or 0x{_LABEL_MAGIC:08x} (labels): this is not an MNIST-format IDX file"
        )
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated header ({4 + len(raw_dims)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    shape = "x".join(map(str, dims))
    if image_size is not None and ndim == 3 and tuple(dims[1:]) != image_size:
        rows, cols = image_size
        raise DataError(
            f"{path}: holds images of {dims[1]}x{dims[2]} pixels (shape {shape}); MNIST-format "
            f"images are {rows}x{cols}"
        )
    if math.prod(dims) > MAX_VALUES:
        raise DataError(
            f"{path}: header promises {shape} = {math.prod(dims):,} values, more than any "
            f"MNIST-format file ({MAX_VALUES:,} at most); the file is corrupt or not IDX"
        )
    return magic + raw_dims, dims


def _check_raw_size(path: Path, header_len: int, count: int) -> None:
    size = path.stat().st_size
    if size != header_len + count:
        raise DataError(
            f"{path}: header promises {count:,} values but the file holds "
            f"{size - header_len:,}; the file is truncated or corrupt"
        )


def _read_at_most(f: _Reader, limit: int) -> bytearray:
    data = bytearray()
    while len(data) < limit:
        chunk = f.read(min(_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _check_payload(path: Path, dims: tuple[int, ...], count: int, got: int) -> None:
    shape = "x".join(map(str, dims))
    if got > count:
        raise DataError(
            f"{path}: holds more data than its header promises ({shape} = {count:,} values); "
            "the file is corrupt or not what it claims to be"
        )
    if got < count:
        raise DataError(
            f"{path}: header promises {shape} = {count:,} values but the file holds {got:,}; "
            "the file is truncated or corrupt"
        )
