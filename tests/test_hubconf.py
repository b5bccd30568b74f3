"""torch.hub (hubconf.py): the weights loaded from a copy of the repository, without the
package installed and beside a user module named lenet5."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees torch & co. but where lenet5 is NOT importable."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    deps = Path(torch.__file__).resolve().parent.parent
    (site / "deps.pth").write_text(str(deps) + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('lenet5'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    )
    assert probe.stdout.strip() == "None", probe.stdout
    return python


def test_torch_hub_load_local_without_the_package(
    bare_python: Path, tmp_path: Path, mnist_dir: Path
) -> None:
    repo = tmp_path / "lenet5 repo"  # a plain copy, as torch.hub would download it
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", repo / "hubconf.py")
    # A user module named lenet5 must neither break the hub load nor be replaced by it.
    user = tmp_path / "user"
    user.mkdir()
    (user / "lenet5.py").write_text("MINE = True\n")
    script = textwrap.dedent(
        f"""
        import sys, torch
        import lenet5 as users_module
        model = torch.hub.load({str(repo)!r}, "lenet5", source="local", pretrained=True)
        assert sys.modules["lenet5"] is users_module and users_module.MINE
        import importlib.util
        spec = importlib.util.spec_from_file_location("hubconf", {str(repo / "hubconf.py")!r})
        hubconf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hubconf)
        assert "pretrained" in hubconf.lenet5.__doc__  # what torch.hub.help shows
        public = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and n[0] != "_"]
        assert public == ["lenet5"], public  # what torch.hub.list shows
        untrained = torch.hub.load({str(repo)!r}, "lenet5", source="local", num_classes=5)
        assert untrained.classifier[5].out_features == 5
        assert untrained.weights is None
        from _lenet5_hub.data import DATASETS, load_dataset, normalize
        from _lenet5_hub.preprocess import to_mnist
        from _lenet5_hub.training import evaluate
        from _lenet5_hub.weights import Weights, get_weights
        record = model.weights
        assert isinstance(record, Weights) and record is get_weights("DEFAULT")
        mnist = DATASETS["mnist"]
        assert (record.mean, record.std, record.classes) == (mnist.mean, mnist.std, mnist.classes)
        fashion = torch.hub.load({str(repo)!r}, "lenet5", source="local", weights="fashion-v1")
        assert fashion.weights.classes == DATASETS["fashion-mnist"].classes
        assert fashion.weights.mean == DATASETS["fashion-mnist"].mean
        digit = torch.zeros(60, 40)
        digit[10:50, 17:23] = 1.0
        x = record.transforms()(digit)
        assert torch.equal(x, normalize(to_mnist(digit)[None], record.mean, record.std)[0])
        assert model(x[None]).argmax().item() == 1
        test = load_dataset("mnist", {str(mnist_dir)!r}, split="test")
        acc = evaluate(model, test).accuracy
        print(f"{{acc:.2f}} {{get_weights('DEFAULT').test_accuracy:.2f}}")
        """
    )
    result = subprocess.run(
        [str(bare_python), "-c", script], cwd=user, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    measured, recorded = result.stdout.split()
    assert measured == recorded
