"""The wheel: what it contains, and that it works installed in a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

import lenet5

REPO = Path(__file__).resolve().parent.parent

# Never copied into the build folder: environments, build outputs and caches.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs", "_build"
)

pytestmark = pytest.mark.slow


def run(*args: str | os.PathLike[str], cwd: Path | None = None) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (so the build leaves nothing in the repo)."""
    source = tmp_path_factory.mktemp("source") / "lenet5"
    shutil.copytree(REPO, source, ignore=_IGNORE, symlinks=True)
    dist = tmp_path_factory.mktemp("dist")
    # Without build isolation when the build backend is installed, so no network is needed;
    # otherwise pip fetches setuptools into an isolated build environment.
    offline = ["--no-build-isolation", "--no-index"] if find_spec("setuptools") else []
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", dist, source)
    wheels = list(dist.glob("lenet5-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel: Path) -> None:
    assert wheel.name.startswith(f"lenet5-{lenet5.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lenet5/__init__.py" in names
    assert "lenet5/py.typed" in names
    assert "lenet5/__main__.py" in names
    assert "lenet5/training/trainer.py" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "scripts/", "benchmarks/"))]
    assert not [n for n in names if "conftest" in n or n.endswith(".pyc")]
    dist_info = f"lenet5-{lenet5.__version__}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "lenet5 = lenet5.cli:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Requires-Dist: torch" in metadata
    assert "Requires-Dist: safetensors" in metadata


def test_wheel_installs_and_works_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    run(sys.executable, "-m", "venv", fresh)
    python = fresh / "bin" / "python"
    if not python.exists():  # Windows
        python = fresh / "Scripts" / "python.exe"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    # Reuse this environment's torch & co. A .pth line only adds the folder to sys.path: the
    # editable install's own .pth files there are not processed, so src/ does not leak in.
    torch_site = Path(torch.__file__).resolve().parent.parent
    (site / "deps.pth").write_text(f"{torch_site}\n")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel)

    script = (
        "import lenet5, torch\n"
        "from lenet5 import LeNet5\n"
        "m = LeNet5()\n"
        "print(lenet5.__file__)\n"
        "print(sum(p.numel() for p in m.parameters()))\n"
        "print(tuple(m(torch.zeros(2, 1, 28, 28)).shape))\n"
        "import lenet5.training, lenet5.callbacks, lenet5.cli\n"
    )
    out = run(python, "-c", script, cwd=tmp_path).splitlines()
    installed = Path(out[0]).resolve()
    assert installed.is_relative_to(fresh.resolve()), installed
    assert not installed.is_relative_to(REPO.resolve())
    assert out[1] == "44426"
    assert out[2] == "(2, 10)"
    assert (installed.parent / "py.typed").is_file()

    # the console script works
    script_path = fresh / "bin" / "lenet5"
    if script_path.exists():
        assert run(script_path, "--version", cwd=tmp_path).strip() == (
            f"lenet5 {lenet5.__version__}"
        )
