"""scripts/fetch_onnxruntime_web.py, offline: the pinned integrity, the cache, its repair.

The docs' "Draw a digit" page loads onnxruntime-web; the script downloads it once (see
docs/demo.rst). These tests build small tarballs in place of the real one, so they need no
network: a tarball whose integrity differs is refused and leaves no cache behind; one that
matches (the pin patched to its integrity) is cached, verified and repaired when damaged.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from helpers import REPO

FETCH_SCRIPT = REPO / "scripts" / "fetch_onnxruntime_web.py"


def _fetcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_onnxruntime_web", FETCH_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def test_fetch_refuses_a_tarball_whose_integrity_differs(tmp_path: Path) -> None:
    fetcher = _fetcher()
    files = {name: b"not the real thing" for name in fetcher.FILES}
    corrupt = _tarball(tmp_path / "onnxruntime-web-1.30.0.tgz", files)
    cache = tmp_path / "cache"
    with pytest.raises(fetcher.FetchError, match=r"integrity is sha512-\S+, expected sha512-"):
        fetcher.fetch(cache_dir=cache, tarball=corrupt)
    assert list(cache.iterdir()) == []  # no cache, no temporary folder left behind
    cli = [sys.executable, str(FETCH_SCRIPT), "--cache-dir", str(cache), "--tarball", str(corrupt)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "is not onnxruntime-web 1.30.0 as published" in done.stderr
    assert list(cache.iterdir()) == []


def test_fetch_caches_verified_files_and_replaces_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetcher = _fetcher()
    files = {name: name.encode() * 100 for name in fetcher.FILES}
    tarball = _tarball(tmp_path / "pkg.tgz", files)
    monkeypatch.setattr(fetcher, "INTEGRITY", fetcher.integrity_of(tarball.read_bytes()))
    cache = tmp_path / "cache"
    folder = fetcher.fetch(cache_dir=cache, tarball=tarball)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [Path(n).name for n in fetcher.FILES] + [fetcher.MANIFEST]
    )
    assert fetcher.fetch(cache_dir=cache) == folder  # cached: no tarball, no network needed
    (folder / Path(fetcher.FILES[0]).name).write_bytes(b"tampered")
    assert not fetcher.cached(folder)
    assert fetcher.fetch(cache_dir=cache, tarball=tarball) == folder
    assert (folder / Path(fetcher.FILES[0]).name).read_bytes() == files[fetcher.FILES[0]]
    assert [p.name for p in cache.iterdir()] == [folder.name]
    incomplete = _tarball(tmp_path / "short.tgz", {fetcher.FILES[0]: b"x"})
    monkeypatch.setattr(fetcher, "INTEGRITY", fetcher.integrity_of(incomplete.read_bytes()))
    with pytest.raises(fetcher.FetchError, match="has no package/"):
        fetcher.fetch(cache_dir=tmp_path / "other", tarball=incomplete)
    assert list((tmp_path / "other").iterdir()) == []
