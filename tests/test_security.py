"""Security claims at the entry points users touch: tampered bundled weights are refused.

Each bundled file is checked against its recorded size and SHA-256 before it is read. That
is proven here through every public way of loading bundled weights, not by calling the
check directly: ``LeNet5.from_pretrained``, ``Predictor``, ``torch.hub.load`` on a copy of
the repository, and ``lenet5 evaluate`` / ``lenet5 predict``, each in a real process.

The tampering is done on a COPY of the package (``src/`` and ``hubconf.py`` copied into a
temporary folder, put first on ``PYTHONPATH``), never on ``src/lenet5/pretrained`` itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lenet5.weights import DEFAULT, REGISTRY

REPO = Path(__file__).resolve().parent.parent
#: The weights ``pretrained=True`` and ``"DEFAULT"`` load, and another bundled set.
TARGET, OTHER = REGISTRY[DEFAULT], REGISTRY["mnist-v2"]


def _flipped(data: bytes) -> bytes:
    """The same size, bits flipped in the middle of the tensor data."""
    changed = bytearray(data)
    for i in range(len(data) // 2, len(data) // 2 + 16):
        changed[i] ^= 0xFF
    return bytes(changed)


#: How the bundled file of TARGET is tampered with, by name.
TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "flipped": _flipped,
    "truncated": lambda data: data[:-1000],
    "swapped": lambda _data: OTHER.path.read_bytes(),  # another bundled file's bytes
}


def _expected_message(kind: str, file: Path) -> str:
    """The one-line refusal for TARGET's file tampered with as ``kind``."""
    start = f"bundled weights {TARGET.name!r} at {file} fail their SHA-256 check"
    tampered = TAMPERINGS[kind](TARGET.path.read_bytes())
    if kind == "flipped":
        digest = hashlib.sha256(tampered).hexdigest()
        return (
            f"{start} (got {digest}, expected {TARGET.sha256}): the file is corrupt or "
            "tampered with; reinstall lenet5"
        )
    return (
        f"{start}: the file is {len(tampered):,} bytes, the recorded one {TARGET.file_size:,} "
        "(truncated, or replaced by another file); reinstall lenet5"
    )


@pytest.fixture(scope="module", params=sorted(TAMPERINGS))
def tampered_copy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """``(kind, repo)``: a copy of the repository (``src/``, ``hubconf.py``) whose DEFAULT
    weights file is tampered with as ``kind``."""
    kind: str = request.param
    repo = tmp_path_factory.mktemp(f"tampered-{kind}") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", repo / "src", ignore=ignore)  # copies contents, not links
    shutil.copy(REPO / "hubconf.py", repo / "hubconf.py")
    file = repo / "src" / "lenet5" / "pretrained" / TARGET.file
    original = TARGET.path.read_bytes()
    assert file.is_file()
    assert not file.is_symlink()
    assert file.resolve() != TARGET.path.resolve()
    file.unlink()  # a new file: never written through a link into the checkout
    file.write_bytes(TAMPERINGS[kind](original))
    assert TARGET.path.read_bytes() == original  # the checkout is untouched
    return kind, repo


_PYTHON_ENTRY_POINTS = """
import json, sys, torch
repo, name = sys.argv[1], sys.argv[2]
import lenet5
assert lenet5.__file__.startswith(repo), lenet5.__file__  # the tampered copy, not src/
from lenet5 import LeNet5
from lenet5.predict import Predictor
outcome = {}
def attempt(label, load):
    try:
        load()
        outcome[label] = "loaded"
    except Exception as exc:
        outcome[label] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
attempt("from_pretrained", lambda: LeNet5.from_pretrained(name))
attempt("from_pretrained DEFAULT", lambda: LeNet5.from_pretrained("DEFAULT"))
attempt("Predictor", lambda: Predictor(name))
attempt("torch.hub", lambda: torch.hub.load(repo, "lenet5", source="local", pretrained=True))
attempt("untampered", lambda: LeNet5.from_pretrained("mnist-v1"))
print(json.dumps(outcome))
"""


def test_python_entry_points_refuse_tampered_bundled_weights(
    tampered_copy: tuple[str, Path], tmp_path: Path
) -> None:
    kind, repo = tampered_copy
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "TORCH_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _PYTHON_ENTRY_POINTS, str(repo), TARGET.name],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    message = _expected_message(kind, repo / "src" / "lenet5" / "pretrained" / TARGET.file)
    error = f"lenet5.weights.WeightsError: {message}"
    # torch.hub loads the package under a private name (see hubconf.py).
    hub_error = f"_lenet5_hub.weights.WeightsError: {message}"
    assert outcome == {
        "from_pretrained": error,
        "from_pretrained DEFAULT": error,
        "Predictor": error,
        "torch.hub": hub_error,
        "untampered": "loaded",  # the copy works: only the tampered file is refused
    }


def test_the_cli_refuses_tampered_bundled_weights_in_one_line(
    tampered_copy: tuple[str, Path],
    tmp_path: Path,
    mnist_dir: Path,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kind, repo = tampered_copy
    message = _expected_message(kind, repo / "src" / "lenet5" / "pretrained" / TARGET.file)
    picture = Image.new("L", (60, 80), 0)
    ImageDraw.Draw(picture).line([(30, 8), (30, 72)], fill=255, width=7)
    picture.save(tmp_path / "one.png")
    commands = {
        "evaluate": ["evaluate", "--weights", TARGET.name, "--data-dir", mnist_dir],
        "predict": ["predict", tmp_path / "one.png", "--weights", "DEFAULT"],
    }
    for command, args in commands.items():
        out = run_cli(*args, pythonpath=[repo / "src"], cwd=tmp_path, timeout=300)
        assert out.returncode == 1, (command, out.stderr)
        assert out.stderr == f"lenet5 {command}: error: {message}\n", command
        assert out.stdout == ""
