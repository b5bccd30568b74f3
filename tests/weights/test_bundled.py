"""The bundled weight sets: the registry, each file's record checked against the file and
its measured accuracy, and tampered files refused through every entry point.

Each bundled file is checked against its recorded size and SHA-256 before it is read. That
is proven here through every public way of loading bundled weights, not by calling the
check directly: ``LeNet5.from_pretrained``, ``Predictor``, ``torch.hub.load`` on a copy of
the repository, and ``lenet5 evaluate`` / ``lenet5 predict``, each in a real process.

The tampering is done on a COPY of the package (``src/`` and ``hubconf.py`` copied into a
temporary folder, put first on ``PYTHONPATH``), never on ``src/lenet5/pretrained`` itself.
"""

from __future__ import annotations

import dataclasses
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

import lenet5
from helpers import REPO
from lenet5 import LeNet5
from lenet5.data import DATASETS, ImageSet
from lenet5.training import evaluate
from lenet5.weights import DEFAULT, REGISTRY, Weights, WeightsError, get_weights, read_safetensors

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


# ---------------------------------------------------------------------------- the registry


def test_registry_has_v1_and_default() -> None:
    assert "mnist-v1" in REGISTRY
    assert get_weights("DEFAULT") is REGISTRY[lenet5.weights.DEFAULT]
    with pytest.raises(WeightsError, match="available"):
        get_weights("nope")


def test_unknown_names_get_a_hint() -> None:
    with pytest.raises(WeightsError, match=r"did you mean 'mnist-v1'\?"):
        get_weights("mnist-v11")
    with pytest.raises(WeightsError, match=r"not a weights name \(did you mean 'DEFAULT'\?\)"):
        LeNet5.from_pretrained("DEFALT")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_schema_meta_matches_file_and_model(name: str) -> None:
    """Every metadata field agrees with the real file and model (cf. torchvision)."""
    entry = REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(Weights)}
    assert all(getattr(entry, f) not in (None, "") for f in fields - {"notes"})
    data = entry.path.read_bytes()
    assert len(data) == entry.file_size
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    _tensors, header = read_safetensors(entry.path)
    assert {k: header[k] for k in entry.metadata()} == entry.metadata()
    model = LeNet5.from_pretrained(name)
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    assert (model.num_classes, model.in_channels) == (entry.num_classes, entry.in_channels)
    assert entry.dataset in DATASETS
    info = DATASETS[entry.dataset]
    assert (entry.mean, entry.std, entry.classes) == (info.mean, info.std, info.classes)
    assert entry.recipe.startswith("lenet5 train ")
    assert "--seed" in entry.recipe
    assert entry.torch_version[0].isdigit()
    assert 0 < entry.test_accuracy <= 100


@pytest.fixture
def data_dir_for(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """The real data folder of a dataset by name (fails in CI, skips elsewhere if missing)."""
    fixtures = {"mnist": "mnist_dir", "fashion-mnist": "fashion_dir"}

    def get(dataset: str) -> Path:
        folder: Path = request.getfixturevalue(fixtures[dataset])
        return folder

    return get


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_recorded_accuracy_is_measured(name: str, data_dir_for: Callable[[str], Path]) -> None:
    entry = REGISTRY[name]
    test = lenet5.load_dataset(entry.dataset, data_dir_for(entry.dataset), split="test")
    result = evaluate(LeNet5.from_pretrained(name), test)
    assert round(result.accuracy, 2) == entry.test_accuracy


def test_v1_reaches_the_reference(mnist_test: ImageSet) -> None:
    assert REGISTRY["mnist-v1"].test_accuracy >= 98.85
    assert evaluate(LeNet5.from_pretrained("mnist-v1"), mnist_test).accuracy >= 98.85


def test_default_has_the_best_recipe_over_five_seeds() -> None:
    mnist = [w for w in REGISTRY.values() if w.dataset == "mnist" and w.seed_accuracies]
    default = get_weights("DEFAULT")
    assert len(default.seed_accuracies) == 5
    assert default.seed_accuracies[0] == default.test_accuracy  # the shipped run is seed 0
    mean = default.recipe_mean_accuracy
    assert mean is not None
    assert mean >= 99.4
    assert mean == max(w.recipe_mean_accuracy or 0.0 for w in mnist)
    assert f"mean {mean:.3f}%" in default.notes
    assert {"mnist-v1", "mnist-v2"} <= set(REGISTRY)  # kept when a better DEFAULT arrived


def test_tampered_bundled_file_fails_its_checksum(tmp_path: Path) -> None:
    entry = REGISTRY["mnist-v1"]
    copy = tmp_path / entry.file
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last weight
    copy.write_bytes(bytes(data))
    # An absolute file name takes the place of the package folder.
    tampered = dataclasses.replace(entry, name="tampered", file=str(copy))
    with pytest.raises(WeightsError, match="fail their SHA-256 check") as info:
        tampered.verified_path()
    assert str(copy) in str(info.value)
    copy.write_bytes(bytes(data[:-10]))
    with pytest.raises(WeightsError, match=r"SHA-256 check: the file is 179,238 bytes.*truncated"):
        tampered.verified_path()
    copy.write_bytes(bytes(data) + b"\0" * 10_000_000)  # read only up to the size plus 1
    with pytest.raises(WeightsError, match="SHA-256 check: the file is 10,179,248 bytes"):
        tampered.verified_path()
