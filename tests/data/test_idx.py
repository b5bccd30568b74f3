"""The bounded IDX reader (lenet5.data._idx): MNIST's file format, validated against its
header, on real and on hostile files."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lenet5.data import DataError, read_idx


def test_read_idx_plain_and_gz(tmp_path: Path, idx_writer: Callable[..., Path]) -> None:
    images = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    plain = idx_writer(tmp_path / "a", images, gz=False)
    packed = idx_writer(tmp_path / "b", images, gz=True)
    assert packed.name == "b.gz"
    assert torch.equal(read_idx(plain), images)
    assert torch.equal(read_idx(packed), images)
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "missing.gz")
    (tmp_path / "short").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(tmp_path / "short")


def _bomb(path: Path, promised: int, inflated: int) -> Path:
    """A gzip whose header promises ``promised`` 28x28 images but inflates to ``inflated``."""
    zeros = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">HBBIII", 0, 0x08, 3, promised, 28, 28))
        for _ in range(inflated // len(zeros)):
            f.write(zeros)
    return path


def test_gzip_bomb_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    # 1 GiB of zeros behind a header that promises 10,000 images (7.8 MB): the reader stops
    # one byte past the promise. Measured in a fresh process: its peak memory.
    bomb = _bomb(tmp_path / "t10k-images-idx3-ubyte.gz", 10_000, 1 << 30)
    assert bomb.stat().st_size < 8 << 20
    code = (
        "import resource, sys\n"
        "from lenet5.data import DataError, read_idx\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_idx({str(bomb)!r})\n"
        "except DataError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[0] == (
        f"{bomb}: holds more data than its header promises (10000x28x28 = 7,840,000 values); "
        "the file is corrupt or not what it claims to be"
    )
    assert int(out[1]) < 100  # MiB of extra peak memory


def test_header_promising_too_much_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">HBBIII", 0, 0x08, 3, 4_000_000_000, 28, 28))
    with pytest.raises(DataError, match=r"promises 4000000000x28x28 = .* more than any"):
        read_idx(path)


def test_raw_file_shorter_than_promised_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">HBBIII", 0, 0x08, 3, 1000, 28, 28) + bytes(100))
    with pytest.raises(DataError, match="784,000 values but the file holds 100"):
        read_idx(path)


def _idx(tmp_path: Path, name: str, header: bytes, payload: bytes = b"") -> Path:
    path = tmp_path / name
    path.write_bytes(header + payload)
    return path


def test_idx_files_that_lie_about_their_size_or_are_folders(tmp_path: Path) -> None:
    short_header = _idx(tmp_path, "a-idx3-ubyte", struct.pack(">HBB", 0, 8, 3) + b"\0\0\0\1")
    with pytest.raises(DataError, match=r"a-idx3-ubyte: truncated header \(8 bytes\)$"):
        read_idx(short_header)
    header = struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10)
    gz = tmp_path / "b-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(header + bytes(4)))  # gzipped: its size promises nothing
    with pytest.raises(DataError, match="header promises 10 = 10 values but the file holds 4"):
        read_idx(gz)
    (tmp_path / "c-idx1-ubyte").mkdir()
    with pytest.raises(DataError, match=r"c-idx1-ubyte: is a folder, not an IDX file$"):
        read_idx(tmp_path / "c-idx1-ubyte")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_idx_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(struct.pack(">HBBI", 0, 8, 1, 0))
    path.chmod(0)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: cannot read \(Permission denied\)$"):
        read_idx(path)


def test_read_idx_warns_when_the_md5_differs(
    tmp_path: Path, idx_writer: Callable[..., Path]
) -> None:
    path = idx_writer(tmp_path / "labels-idx1-ubyte", torch.arange(10, dtype=torch.uint8))
    with pytest.warns(
        UserWarning, match=r"MD5 of the decompressed data is [0-9a-f]{32}, expected 0+"
    ):
        labels = read_idx(path, md5="0" * 32)
    assert labels.tolist() == list(range(10))
