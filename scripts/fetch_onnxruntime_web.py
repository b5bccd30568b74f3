"""Fetch ONNX Runtime Web, pinned and integrity-checked, for the docs' "Draw a digit" page.

The page (docs/demo.rst) runs the model in the browser with onnxruntime-web. This script
downloads the package's tarball from the npm registry (with ``npm pack``, so the user's npm
configuration, proxy or mirror is obeyed; straight from registry.npmjs.org when npm is not
installed), checks it against the ``sha512`` integrity pinned below, and keeps only the
files the page needs in a cache folder, so that later docs builds run offline::

    python scripts/fetch_onnxruntime_web.py                  # prints the cache folder
    python scripts/fetch_onnxruntime_web.py --tarball onnxruntime-web-1.30.0.tgz

The cache lives in ``$XDG_CACHE_HOME/lenet5`` (``~/.cache/lenet5`` by default), one folder
per version. It is written into a temporary folder beside it and renamed into place once
complete, so an interrupted run never leaves a half-written cache; a cached folder is
checked against its manifest (SHA-256 of each file) every time it is used.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"
#: ``dist.integrity`` of onnxruntime-web 1.30.0 on registry.npmjs.org (``npm view``).
INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZCl"
    "zcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
#: What the page loads: the WebAssembly build as one ES module with Emscripten's glue code
#: bundled in (so no second module is imported at run time), and its WebAssembly binary.
#: The page runs it on one thread, which needs no cross-origin isolation headers.
FILES = ("dist/ort.wasm.bundle.min.mjs", "dist/ort-wasm-simd-threaded.wasm")
MANIFEST = "MANIFEST.json"
#: Seconds a download may take.
TIMEOUT = 600


class FetchError(RuntimeError):
    """onnxruntime-web could not be fetched, or what was fetched is not the pinned package."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lenet5``, or ``~/.cache/lenet5``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lenet5"


def integrity_of(data: bytes) -> str:
    """The npm ``sha512-...`` integrity string (Subresource Integrity format) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached(folder: Path) -> bool:
    """Whether ``folder`` holds every file, unchanged since it was verified and written."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("integrity") != INTEGRITY:
        return False
    files = manifest.get("files", {})
    names = {Path(name).name for name in FILES}
    if set(files) != names:
        return False
    return all((folder / n).is_file() and _sha256(folder / n) == files[n] for n in names)


def _npm_pack(dest: Path) -> Path | None:
    """The tarball downloaded by ``npm pack`` into ``dest``; ``None`` if npm is not installed."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    spec = f"{PACKAGE}@{VERSION}"
    cmd = [npm, "pack", spec, "--json", "--silent", "--pack-destination", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"`npm pack {spec}` took more than {TIMEOUT} s") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[-400:]
        raise FetchError(f"`npm pack {spec}` failed (exit {done.returncode}): {detail}")
    try:
        filename = json.loads(done.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        raise FetchError(f"`npm pack {spec}` printed no file name: {done.stdout[:200]!r}") from None
    return dest / Path(filename).name


def _download(dest: Path) -> Path:
    """The tarball, from npm if it is installed, else straight from the registry."""
    packed = _npm_pack(dest)
    if packed is not None:
        return packed
    target = dest / f"{PACKAGE}-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=TIMEOUT) as response:
            target.write_bytes(response.read())
    except OSError as exc:
        raise FetchError(f"cannot download {TARBALL_URL}: {exc}") from None
    return target


def _extract(data: bytes, out: Path) -> dict[str, str]:
    """Write the :data:`FILES` of the tarball into ``out``; returns their SHA-256 by name.

    Only the named regular files are read (never ``extractall``), so a tarball cannot write
    anywhere else or plant links.
    """
    digests: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in FILES:
            try:
                member = tar.getmember(f"package/{name}")
            except KeyError:
                raise FetchError(f"the tarball has no package/{name}") from None
            source = tar.extractfile(member) if member.isfile() else None
            if source is None:
                raise FetchError(f"package/{name} in the tarball is not a regular file")
            target = out / Path(name).name
            target.write_bytes(source.read())
            digests[target.name] = _sha256(target)
    return digests


def fetch(cache_dir: Path | None = None, tarball: Path | None = None) -> Path:
    """The folder holding the verified :data:`FILES`, downloading them on first use.

    Args:
        cache_dir: Where the versioned folder lives (default: :func:`default_cache_dir`).
        tarball: A local ``onnxruntime-web-1.30.0.tgz`` to use instead of downloading.

    Returns:
        ``cache_dir / "onnxruntime-web-1.30.0"``, holding the files by their base names.

    Raises:
        FetchError: If the download fails or the tarball's integrity is not the pinned
            one; nothing is left in the cache then.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache_dir / f"{PACKAGE}-{VERSION}"
    if cached(folder):
        return folder
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the cache folder {cache_dir}: {exc}") from None
    # Everything happens in a temporary folder beside the cache, renamed into place at the
    # end (same file system): a crash or a bad tarball leaves nothing half-written behind.
    with tempfile.TemporaryDirectory(prefix=f".{PACKAGE}-", dir=cache_dir) as tmp:
        path = Path(tarball) if tarball is not None else _download(Path(tmp))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc}") from None
        found = integrity_of(data)
        if found != INTEGRITY:
            raise FetchError(
                f"{path} is not {PACKAGE} {VERSION} as published: its integrity is {found}, "
                f"expected {INTEGRITY}"
            )
        out = Path(tmp) / "out"
        out.mkdir()
        manifest: dict[str, object] = {"package": PACKAGE, "version": VERSION}
        manifest.update(integrity=INTEGRITY, files=_extract(data, out))
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists():  # a stale or damaged copy: replace it
            shutil.rmtree(folder)
        try:
            out.rename(folder)
        except OSError:
            if not cached(folder):  # not another build finishing first
                raise
    return folder


def main(argv: list[str] | None = None) -> int:
    """Command line: fetch (or verify the cache) and print the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, help="default: $XDG_CACHE_HOME/lenet5")
    parser.add_argument("--tarball", type=Path, help=f"a local {PACKAGE}-{VERSION}.tgz to use")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.cache_dir, args.tarball))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
