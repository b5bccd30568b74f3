"""Atomic writes and JSON (lenet5._io): all or nothing, errors that name the path and the
cause, a live writer's staging folder kept, JSON read bounded and written strict."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import tmpfs
from lenet5 import LeNet5
from lenet5._io import (
    WriteError,
    atomic_file,
    atomic_folder,
    atomic_write_bytes,
    atomic_write_text,
    dumps_json,
    loads_json,
    remove_leftovers,
)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real 64 KiB filesystem (tmpfs), where writes run out of space."""
    with tmpfs(tmp_path / "small", "size=64k") as mount:
        yield mount


def test_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.txt"
    atomic_write_text(path, "old\n")
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, b"old")

    def write_half() -> None:
        with atomic_file(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_half()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_failed_folder_leaves_the_old_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    with atomic_folder(folder) as tmp:
        (tmp / "a").write_text("1")

    def interrupted() -> None:
        with atomic_folder(folder) as tmp:
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert sorted(p.name for p in folder.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_files_get_the_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "f", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_disk_full_names_the_path_and_keeps_the_old_file(full_disk: Path) -> None:
    path = full_disk / "model.safetensors"
    atomic_write_bytes(path, b"old")
    with pytest.raises(WriteError) as excinfo:
        atomic_write_bytes(path, bytes(1 << 20))
    assert str(excinfo.value) == f"cannot write {path}: No space left on device"
    assert isinstance(excinfo.value, OSError)
    assert path.read_bytes() == b"old"
    assert [p.name for p in full_disk.iterdir()] == ["model.safetensors"]


def test_a_file_size_limit_is_a_write_error_too(tmp_path: Path) -> None:
    # A second, mount-free way to make the kernel refuse a write: RLIMIT_FSIZE.
    code = (
        "import resource, signal, sys\n"
        "from lenet5._io import WriteError, atomic_write_bytes\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        f"    atomic_write_bytes({str(tmp_path / 'big')!r}, bytes(1 << 16))\n"
        "except WriteError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == f"cannot write {tmp_path / 'big'}: File too large"
    assert list(tmp_path.iterdir()) == []


def test_permission_denied_names_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permissions; a path under a regular file fails for everyone.
        blocker = tmp_path / "file"
        blocker.write_text("")
        target = blocker / "sub" / "x.json"
        with pytest.raises(WriteError, match=f"cannot write {target}: "):
            atomic_write_text(target, "{}")
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(WriteError, match="Permission denied"):
        atomic_write_text(locked / "x.json", "{}")


def test_remove_leftovers(tmp_path: Path) -> None:
    (tmp_path / ".epoch-0001.abc.tmp").mkdir()
    (tmp_path / ".epoch-0001.abc.tmp" / "model.safetensors").write_text("")
    (tmp_path / ".latest.xyz.tmp").write_text("")
    (tmp_path / "epoch-0001").mkdir()
    removed = remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [".epoch-0001.abc.tmp", ".latest.xyz.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001"]


def test_weights_on_a_full_disk_name_the_path(full_disk: Path) -> None:
    from lenet5 import LeNet5
    from lenet5.weights import save_weights

    path = full_disk / "model.safetensors"
    with pytest.raises(WriteError) as excinfo:
        save_weights(LeNet5(), path)  # 180 kB on a 64 KiB filesystem
    assert str(excinfo.value) == f"cannot write {path}: No space left on device"
    assert list(full_disk.iterdir()) == []


# ---------------------------------------------------- nested writes, staging folders, JSON


def test_a_failing_write_inside_an_atomic_one_keeps_its_own_message(tmp_path: Path) -> None:
    from lenet5._io import WriteError, atomic_folder, atomic_write_bytes

    (tmp_path / "a file").write_text("")
    inner = tmp_path / "a file" / "inner.bin"  # under a file: cannot be written

    def write_both() -> None:
        with atomic_folder(tmp_path / "outer") as staged:
            (staged / "part").write_text("half of the folder")
            atomic_write_bytes(inner, b"data")

    with pytest.raises(WriteError) as info:
        write_both()
    assert str(info.value).startswith(f"cannot write {inner}: ")  # the inner file's message
    assert "outer" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]  # nothing left behind


def test_a_live_writers_staging_folder_is_kept(tmp_path: Path) -> None:
    from lenet5._io import remove_stale_leftovers, temporary_folder

    with temporary_folder(tmp_path, "lenet5-save") as mine:
        LeNet5().save_pretrained(tmp_path)  # another save in the same folder meanwhile
        assert mine.is_dir()  # ours (a live process's) is not removed
        assert remove_stale_leftovers(tmp_path) == []
    assert not mine.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 10_000, "nested deeper than 32 levels"),
        ('{"a": Infinity}', "Infinity is not JSON"),
        ("{", "not valid JSON"),
    ],
)
def test_json_reads_are_bounded(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loads_json(text)
    assert loads_json(dumps_json({"x": [float("-inf")]})) == {
        "x": [None],
        "non_finite": {"x[0]": "-inf"},
    }
