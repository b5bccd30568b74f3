"""Transfer to a new head (#25 item 3): ``LeNet5.from_pretrained(name, num_classes=N)``
and torch.hub's ``num_classes``, and a model of any head size round-tripping through
``save_pretrained``, ``from_pretrained`` and ``torch.hub.load`` from a copy of the
repository, with its class names. Real weights, real files, real Fashion-MNIST images."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from helpers import quiet
from lenet5 import LeNet5, normalize
from lenet5.data import ImageSet, load_dataset
from lenet5.weights import WeightsError, get_weights

REPO = Path(__file__).resolve().parent.parent
HEAD = ("classifier.5.weight", "classifier.5.bias")
NAMES = ["T-shirt/top", "Trouser", "Sneaker"]


def body(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k not in HEAD}


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A plain copy of the repository's hubconf.py and src/, as torch.hub downloads it."""
    repo = tmp_path_factory.mktemp("hub") / "lenet5"
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", repo / "hubconf.py")
    return str(repo)


def hub_load(repo: str, **kwargs: Any) -> Any:
    return torch.hub.load(repo, "lenet5", source="local", **kwargs)  # type: ignore[no-untyped-call]


# ------------------------------------------------------------------- a new head


def test_a_new_head_loads_the_body_and_says_so_once() -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = LeNet5.from_pretrained("DEFAULT", num_classes=3)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert caught[0].filename == __file__  # the user's line, not the package's
    assert "classifier.5.weight and classifier.5.bias not loaded" in message
    assert "has 10 outputs, the model 3" in message
    assert "nn.Linear(84, 3)" in message
    # Every other layer is DEFAULT's; the head is a fresh nn.Linear(84, 3) drawn from
    # torch's global generator, as if made at the call.
    assert same_tensors(body(model), body(LeNet5.from_pretrained("DEFAULT")))
    torch.manual_seed(0)
    fresh = nn.Linear(84, 3)
    assert torch.equal(model.classifier[5].weight, fresh.weight)
    assert torch.equal(model.classifier[5].bias, fresh.bias)
    assert model.num_classes == 3
    assert not model.training  # evaluation mode, as every from_pretrained model
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_the_record_of_a_new_head_claims_nothing_of_the_old_one() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LeNet5.from_pretrained("fashion-v1", num_classes=4)
    old = get_weights("fashion-v1")
    record = model.weights
    assert record is not None
    assert record.name == "fashion-v1 (new 4-class head)"
    assert record.classes == ("0", "1", "2", "3")
    assert record.test_accuracy is None
    assert record.seed_accuracies == ()
    assert record.corruption_accuracy is None
    assert record.num_params == sum(p.numel() for p in model.parameters()) == 44_426 - 6 * 85
    # What the body brings stays: its dataset, normalisation and file.
    assert (record.dataset, record.mean, record.std) == (old.dataset, old.mean, old.std)
    assert record.path == old.path
    assert "not trained" in record.notes
    assert get_weights("fashion-v1").classes == old.classes  # the registry's is untouched


def test_the_same_number_of_classes_loads_whole_and_says_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LeNet5.from_pretrained("mnist-v1", num_classes=10)
    assert model.weights is get_weights("mnist-v1")
    assert same_tensors(model.state_dict(), LeNet5.from_pretrained("mnist-v1").state_dict())


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "3"])
def test_a_bad_number_of_classes_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        LeNet5.from_pretrained("DEFAULT", num_classes=bad)


def test_a_new_head_from_a_folder_and_a_file(tmp_path: Path) -> None:
    """Any source from_pretrained takes: a save_pretrained folder, a .safetensors file."""
    folder = LeNet5.from_pretrained("mnist-v2").save_pretrained(tmp_path / "saved")
    for source in (folder, folder / "model.safetensors"):
        with pytest.warns(UserWarning, match=r"classifier\.5\.weight and classifier\.5\.bias"):
            model = LeNet5.from_pretrained(source, num_classes=2)
        assert model.num_classes == 2
        assert same_tensors(body(model), body(LeNet5.from_pretrained("mnist-v2")))
    # The rest of the file is still checked: a body that does not fit is refused.
    tensors = dict(LeNet5().state_dict())
    tensors["classifier.1.weight"] = torch.zeros(100, 256)
    save_file(tensors, tmp_path / "odd.safetensors")
    with pytest.raises(WeightsError, match=r"misshaped: classifier\.1\.weight"):
        LeNet5.from_pretrained(tmp_path / "odd.safetensors", num_classes=2)


# ------------------------------------------------------------------ the round trip


@pytest.fixture(scope="module")
def fashion3(fashion_dir: Path) -> tuple[ImageSet, ImageSet]:
    """256 training and 128 test images of T-shirt/top, Trouser and Sneaker, labelled 0-2."""

    def three(split: str, size: int) -> ImageSet:
        data = load_dataset("fashion-mnist", fashion_dir, split=split)  # type: ignore[arg-type]
        keep = torch.isin(data.labels, torch.tensor([0, 1, 7])).nonzero().flatten()[:size]
        labels = data.labels[keep]
        labels = torch.where(labels == 7, 2, labels)
        return ImageSet(data.images[keep], labels, tuple(NAMES), data.mean, data.std)

    return three("train", 256), three("test", 128)


@pytest.fixture(scope="module")
def trained3(fashion3: tuple[ImageSet, ImageSet]) -> LeNet5:
    """DEFAULT with a new 3-class head, fine-tuned for one epoch on real images."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LeNet5.from_pretrained("DEFAULT", num_classes=3)
    trainer = quiet(model, epochs=1, batch_size=32)
    trainer.fit(fashion3[0])
    assert trainer.evaluate(fashion3[1]).accuracy > 60.0  # it learnt the three classes
    return trainer.model


def test_a_three_class_model_round_trips_with_its_names(
    tmp_path: Path, trained3: LeNet5, fashion3: tuple[ImageSet, ImageSet], hub_repo: str
) -> None:
    test = fashion3[1]
    x = normalize(test.images, test.mean, test.std)
    trained3.eval()
    with torch.inference_mode():
        expected = trained3(x)
    folder = trained3.save_pretrained(tmp_path / "fashion3", classes=NAMES)
    assert json.loads((folder / "config.json").read_text()) == {
        "in_channels": 1,
        "num_classes": 3,
    }
    loaded = LeNet5.from_pretrained(folder)
    hub = hub_load(hub_repo, weights=str(folder))
    for model in (loaded, hub):
        assert model.weights is not None
        assert model.weights.classes == tuple(NAMES)
        with torch.inference_mode():
            assert torch.equal(model(x), expected)


def test_a_replaced_head_is_what_save_pretrained_writes(tmp_path: Path) -> None:
    """The issue's case: a 10-class model whose last layer is replaced by hand."""
    model = LeNet5()
    model.classifier[5] = nn.Linear(84, 3)
    assert model.num_classes == 3
    assert model.config() == {"num_classes": 3, "in_channels": 1}
    folder = model.save_pretrained(tmp_path / "replaced")
    assert json.loads((folder / "config.json").read_text())["num_classes"] == 3
    loaded = LeNet5.from_pretrained(folder)
    assert same_tensors(loaded.state_dict(), model.state_dict())
    assert loaded.weights is not None
    assert loaded.weights.classes == ("0", "1", "2")  # no names given: numbered


def test_class_names_must_fit_the_head(tmp_path: Path) -> None:
    model = LeNet5(num_classes=3)
    with pytest.raises(ValueError, match="classes names 2 classes, but the model has 3"):
        model.save_pretrained(tmp_path / "x", classes=["a", "b"])
    with pytest.raises(ValueError, match="a sequence of strings"):
        model.save_pretrained(tmp_path / "x", classes="abc")
    assert not (tmp_path / "x").exists()
    # The argument wins over a "classes" of metadata.
    folder = model.save_pretrained(
        tmp_path / "y", classes=["a", "b", "c"], metadata={"classes": '["x", "y", "z"]'}
    )
    assert LeNet5.from_pretrained(folder).weights.classes == ("a", "b", "c")  # type: ignore[union-attr]


# ------------------------------------------------------------------------ torch.hub


def test_torch_hub_gives_a_new_head_or_a_fresh_model(hub_repo: str) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = hub_load(hub_repo, pretrained=True, num_classes=3)
    assert [w.filename for w in caught] == [__file__]  # once, at the torch.hub.load line
    assert "classifier.5.weight and classifier.5.bias not loaded" in str(caught[0].message)
    assert type(model).__module__ == "_lenet5_hub.model"
    assert model.num_classes == 3
    assert same_tensors(body(model), body(LeNet5.from_pretrained("DEFAULT")))
    torch.manual_seed(0)
    assert torch.equal(model.classifier[5].weight, nn.Linear(84, 3).weight)
    fresh = hub_load(hub_repo, pretrained=False, num_classes=3)
    assert fresh.num_classes == 3
    assert fresh.weights is None
    with pytest.raises(TypeError, match=r"unexpected \['in_channels'\]"):
        hub_load(hub_repo, pretrained=True, in_channels=3)
