"""The wheel: what it contains, and that it works installed (not editable) in a fresh venv.

Everything a pip user touches is run from the installed wheel, never from ``src/``: the
console script evaluating the bundled ``DEFAULT`` weights, ``from_pretrained`` for every
registry name, and ``torch.hub.load`` from a copy of the repository. The fresh environment
reuses this one's torch & co. through a ``.pth`` line, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
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
from lenet5 import LeNet5
from lenet5.weights import DEFAULT, REGISTRY, registry

REPO = Path(__file__).resolve().parent.parent

# Never copied into the build folder: environments, build outputs and caches.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs", "_build"
)

pytestmark = pytest.mark.slow


def run(
    *args: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    full_env = dict(os.environ)
    full_env.pop("PYTHONPATH", None)
    full_env.pop("LENET5_DATA_DIR", None)
    full_env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    full_env["OMP_NUM_THREADS"] = "1"
    full_env.update(env or {})
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_checkout(destination: Path) -> Path:
    """A copy of the checkout without environments, build outputs and caches."""
    shutil.copytree(REPO, destination, ignore=_IGNORE, symlinks=True)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (so the build leaves nothing in the repo)."""
    source = copy_checkout(tmp_path_factory.mktemp("source") / "lenet5")
    dist = tmp_path_factory.mktemp("dist")
    # Without build isolation when the build backend is installed, so no network is needed;
    # otherwise pip fetches setuptools into an isolated build environment.
    offline = ["--no-build-isolation", "--no-index"] if find_spec("setuptools") else []
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", dist, source)
    wheels = list(dist.glob("lenet5-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


class Venv:
    """A fresh virtual environment with the wheel installed in it (not editable)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
        self.python = bin_dir / ("python.exe" if os.name == "nt" else "python")
        self.lenet5 = bin_dir / ("lenet5.exe" if os.name == "nt" else "lenet5")
        self.site = Path(
            run(
                self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
            ).strip()
        ).resolve()

    def python_json(self, script: str, cwd: Path) -> object:
        """Run ``script`` with the venv's Python; it prints one JSON value as its last line."""
        return json.loads(run(self.python, "-c", script, cwd=cwd).splitlines()[-1])


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("venv") / "fresh"
    run(sys.executable, "-m", "venv", root)
    env = Venv(root)
    # Reuse this environment's torch & co. A .pth line only adds the folder to sys.path: the
    # editable install's own .pth files there are not processed, so src/ does not leak in.
    torch_site = Path(torch.__file__).resolve().parent.parent
    (env.site / "deps.pth").write_text(f"{torch_site}\n")
    run(env.python, "-m", "pip", "install", "--no-deps", "--no-index", wheel)
    return env


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working folder outside the checkout, so that ``src/`` is never on the path."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_wheel_contents(wheel: Path) -> None:
    assert wheel.name.startswith(f"lenet5-{lenet5.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lenet5/__init__.py" in names
    assert "lenet5/py.typed" in names
    assert "lenet5/__main__.py" in names
    assert "lenet5/training/trainer.py" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "scripts/", "benchmarks/"))]
    assert not [n for n in names if "conftest" in n or n.endswith(".pyc")]
    assert "hubconf.py" not in names
    dist_info = f"lenet5-{lenet5.__version__}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "lenet5 = lenet5.cli:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Requires-Dist: torch" in metadata
    assert "Requires-Dist: safetensors" in metadata


def test_wheel_ships_exactly_the_registry_files_with_their_recorded_size_and_sha256(
    wheel: Path,
) -> None:
    archive = zipfile.ZipFile(wheel)
    pretrained = {
        info.filename.removeprefix("lenet5/pretrained/"): info
        for info in archive.infolist()
        if info.filename.startswith("lenet5/pretrained/")
    }
    assert sorted(pretrained) == sorted(w.file for w in REGISTRY.values())
    for weights in REGISTRY.values():
        data = archive.read(pretrained[weights.file])
        assert len(data) == weights.file_size, weights.name
        assert _sha256(data) == weights.sha256, weights.name
    # Besides the modules, the package holds the weights and the typing marker, nothing else.
    data_files = [
        n for n in archive.namelist() if n.startswith("lenet5/") and not n.endswith(".py")
    ]
    assert sorted(data_files) == sorted(
        ["lenet5/py.typed"] + [f"lenet5/pretrained/{w.file}" for w in REGISTRY.values()]
    )


def test_wheel_installs_and_works_in_a_fresh_venv(venv: Venv, scratch: Path) -> None:
    script = (
        "import json, lenet5, torch\n"
        "from lenet5 import LeNet5\n"
        "import lenet5.training, lenet5.callbacks, lenet5.cli\n"
        "m = LeNet5()\n"
        "print(json.dumps([lenet5.__file__, sum(p.numel() for p in m.parameters()),\n"
        "    list(m(torch.zeros(2, 1, 28, 28)).shape)]))\n"
    )
    file, params, shape = venv.python_json(script, scratch)  # type: ignore[misc]
    installed = Path(file).resolve()
    assert installed.is_relative_to(venv.site), installed
    assert not installed.is_relative_to(REPO.resolve())
    assert params == 44426
    assert shape == [2, 10]
    assert (installed.parent / "py.typed").is_file()
    assert run(venv.lenet5, "--version", cwd=scratch).strip() == f"lenet5 {lenet5.__version__}"


def test_installed_cli_evaluates_default_to_its_recorded_accuracy(
    venv: Venv, scratch: Path, mnist_dir: Path
) -> None:
    out = run(
        venv.lenet5, "evaluate", "--weights", "DEFAULT", "--data-dir", mnist_dir, "--json",
        cwd=scratch,
    )  # fmt: skip
    result = json.loads(out)
    expected = REGISTRY[DEFAULT]
    assert expected.test_accuracy is not None
    assert result["test_accuracy"] == expected.test_accuracy
    assert result["total"] == 10000
    assert result["correct"] == round(expected.test_accuracy * 100)
    # ... with the weights of the wheel: `lenet5 info` of the same environment says where.
    info = run(venv.lenet5, "info", cwd=scratch)
    line = next(x for x in info.splitlines() if x.startswith("weights DEFAULT: "))
    path = Path(line.removeprefix("weights DEFAULT: ").split(" (")[0]).resolve()
    assert path == venv.site / "lenet5" / "pretrained" / expected.file


def test_installed_from_pretrained_loads_every_registry_name(venv: Venv, scratch: Path) -> None:
    names = sorted(registry())
    script = (
        "import json, torch, lenet5\n"
        "from lenet5 import LeNet5\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(3, 1, 28, 28)\n"
        "out = {'__file__': lenet5.__file__}\n"
        f"for name in {names!r}:\n"
        "    model = LeNet5.from_pretrained(name)\n"
        "    with torch.inference_mode():\n"
        "        logits = model(x)\n"
        "    out[name] = [model.weights.name, str(model.weights.path), model.training,\n"
        "                 logits.tolist()]\n"
        "print(json.dumps(out))\n"
    )
    found = venv.python_json(script, scratch)
    assert isinstance(found, dict)
    assert Path(found.pop("__file__")).resolve().is_relative_to(venv.site)
    assert sorted(found) == names
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    for name, (loaded_name, path, training, logits) in found.items():
        record = registry()[name]
        assert loaded_name == record.name == (DEFAULT if name == "DEFAULT" else name)
        assert Path(path).resolve() == venv.site / "lenet5" / "pretrained" / record.file
        assert training is False
        # The same bytes as the checkout's file, so the same outputs, bit for bit.
        with torch.inference_mode():
            assert torch.tensor(logits).equal(LeNet5.from_pretrained(name)(x)), name


def test_torch_hub_loads_a_copy_of_the_repository_next_to_the_installed_wheel(
    venv: Venv, scratch: Path, tmp_path: Path
) -> None:
    checkout = copy_checkout(tmp_path / "checkout")
    script = (
        "import json, torch\n"
        f"model = torch.hub.load({str(checkout)!r}, 'lenet5', source='local', pretrained=True)\n"
        "import lenet5\n"
        "with torch.inference_mode():\n"
        "    logits = model(torch.zeros(1, 1, 28, 28))\n"
        "print(json.dumps([type(model).__module__, model.weights.name,\n"
        "    str(model.weights.path), lenet5.__file__, logits.tolist()]))\n"
    )
    module, name, path, file, logits = venv.python_json(script, scratch)  # type: ignore[misc]
    assert module == "_lenet5_hub.model"
    assert name == DEFAULT
    # The hub model is the checkout's; the installed lenet5 is still the wheel's.
    assert Path(path).resolve() == (checkout / "src/lenet5/pretrained" / REGISTRY[DEFAULT].file)
    assert Path(file).resolve().is_relative_to(venv.site)
    with torch.inference_mode():
        expected = LeNet5.from_pretrained("DEFAULT")(torch.zeros(1, 1, 28, 28))
    assert torch.tensor(logits).equal(expected)
