"""The bounded IDX reader: MNIST's file format, validated against its header."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import warnings
from pathlib import Path

import torch

from ._facts import DataError

__all__ = ["read_idx"]

_IDX_DTYPES = {0x08: torch.uint8}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801


def read_idx(path: str | os.PathLike[str], *, md5: str | None = None) -> torch.Tensor:
    """Read an IDX file (gzipped or not) into a tensor.

    The header is validated against the file: the magic number, the element type, the
    number of dimensions and the payload length must all agree.

    Args:
        path: The file to read. A name ending in ``.gz`` is decompressed.
        md5: If given, the expected MD5 of the decompressed bytes. A mismatch only warns:
            the file is structurally valid, but it is not the official one.

    Returns:
        A ``uint8`` tensor with the shape the header gives (``(N,)`` for labels,
        ``(N, rows, cols)`` for images).

    Raises:
        DataError: If the file cannot be read or is truncated, corrupt or not IDX.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: cannot read ({exc}); the file is truncated or corrupt, download it again"
        ) from exc
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DataError(
            f"{path}: bad magic number 0x{raw[:4].hex()}; expected 0x{_IMAGE_MAGIC:08x} (images) "
            f"or 0x{_LABEL_MAGIC:08x} (labels): this is not an MNIST-format IDX file"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    count = 1
    for d in dims:
        count *= d
    if len(raw) - header_len != count:
        raise DataError(
            f"{path}: header promises {'x'.join(map(str, dims))} = {count:,} values but the file "
            f"holds {len(raw) - header_len:,}; the file is truncated or corrupt"
        )
    if md5 is not None:
        actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if actual != md5:
            warnings.warn(
                f"{path}: MD5 of the decompressed data is {actual}, expected {md5}; the file is "
                "well-formed but differs from the official release, so results may not be "
                "comparable with published ones",
                stacklevel=2,
            )
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header_len, count=count)
    return data.reshape(dims)
