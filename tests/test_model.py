"""The LeNet5 module: size, layer shapes, compatibility with the reference layout, checks,
and saving: save_pretrained and from_pretrained round trips, the model card, non-finite
weights never saved, nothing left behind by a killed save."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from lenet5 import LeNet5
from lenet5.data import DATASETS
from lenet5.weights import WeightsError


class ReferenceLeNet5(nn.Module):
    """The reference recipe's model, written out independently of the library."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.Tanh(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count() -> None:
    assert n_params(LeNet5()) == 44_426
    assert all(p.requires_grad for p in LeNet5().parameters())


def test_layer_output_shapes() -> None:
    model = LeNet5()
    x = torch.randn(3, 1, 28, 28)
    shapes = []
    for layer in [*model.features, *model.classifier]:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [
        (6, 24, 24),  # conv1
        (6, 24, 24),  # tanh
        (6, 12, 12),  # pool
        (16, 8, 8),  # conv2
        (16, 8, 8),  # tanh
        (16, 4, 4),  # pool
        (256,),  # flatten
        (120,),
        (120,),
        (84,),
        (84,),
        (10,),
    ]


def test_activations_and_pooling_are_the_reference_ones() -> None:
    model = LeNet5()
    kinds = [type(m) for m in [*model.features, *model.classifier]]
    assert kinds == [
        nn.Conv2d,
        nn.Tanh,
        nn.AvgPool2d,
        nn.Conv2d,
        nn.Tanh,
        nn.AvgPool2d,
        nn.Flatten,
        nn.Linear,
        nn.Tanh,
        nn.Linear,
        nn.Tanh,
        nn.Linear,
    ]


def test_reference_state_dict_loads_strictly_and_gives_identical_outputs() -> None:
    torch.manual_seed(1)
    reference = ReferenceLeNet5().eval()
    model = LeNet5().eval()
    assert set(model.state_dict()) == set(reference.state_dict())
    result = model.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    # and the other way round
    reference.load_state_dict(LeNet5().state_dict(), strict=True)


def test_forward_batch_shape_and_dtype() -> None:
    out = LeNet5()(torch.zeros(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "shape",
    [(1, 28, 28), (2, 3, 28, 28), (2, 1, 32, 32), (2, 1, 28), (2, 28, 28, 1)],
    ids=str,
)
def test_wrong_input_shape_raises_value_error_naming_expected_shape(
    shape: tuple[int, ...],
) -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)") as excinfo:
        LeNet5()(torch.zeros(shape))
    assert str(tuple(shape)) in str(excinfo.value)


@pytest.mark.parametrize(("num_classes", "in_channels"), [(10, 1), (2, 1), (47, 3), (1, 2)])
def test_variants(num_classes: int, in_channels: int) -> None:
    model = LeNet5(num_classes=num_classes, in_channels=in_channels)
    out = model(torch.randn(4, in_channels, 28, 28))
    assert out.shape == (4, num_classes)
    assert model.features[0].in_channels == in_channels
    assert model.classifier[-1].out_features == num_classes
    expected = 44_426 + (in_channels - 1) * 6 * 25 + (num_classes - 10) * (84 + 1)
    assert n_params(model) == expected
    assert model.config() == {"num_classes": num_classes, "in_channels": in_channels}
    with pytest.raises(ValueError, match=rf"\(N, {in_channels}, 28, 28\)"):
        model(torch.randn(4, in_channels + 1, 28, 28))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -3}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"num_classes": "10"}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": None}, "in_channels"),
    ],
    ids=repr,
)
def test_bad_constructor_arguments(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LeNet5(**kwargs)  # type: ignore[arg-type]


def test_repr_mentions_parameter_count_and_config() -> None:
    text = repr(LeNet5())
    assert "44,426" in text
    assert "num_classes=10" in text
    assert "in_channels=1" in text
    assert f"{n_params(LeNet5(num_classes=3)):,}" in repr(LeNet5(num_classes=3))


def test_backward_reaches_every_parameter() -> None:
    model = LeNet5()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
    loss.backward()  # type: ignore[no-untyped-call]
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.count_nonzero(p.grad) > 0, name


def test_save_and_load_pretrained_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = LeNet5(num_classes=7)
    folder = model.save_pretrained(tmp_path)
    assert (folder / "model.safetensors").is_file()
    assert (folder / "config.json").is_file()
    loaded = LeNet5.from_pretrained(folder)
    assert not loaded.training
    assert loaded.num_classes == 7
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2
        assert torch.equal(a, b)


# ------------------------------------------------ the Hugging Face mixin and the card


def test_the_hub_round_trip_comes_from_huggingface_hubs_mixin() -> None:
    import huggingface_hub

    model = LeNet5()
    assert isinstance(model, huggingface_hub.ModelHubMixin)
    assert isinstance(model, huggingface_hub.PyTorchModelHubMixin)
    assert model.weights is None  # built with the constructor, not loaded


def test_save_pretrained_round_trip_preserves_outputs(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = LeNet5(num_classes=4, in_channels=2).eval()
    folder = model.save_pretrained(tmp_path / "out", metadata={"dataset": "mnist"})
    loaded = LeNet5.from_pretrained(folder)
    x = torch.randn(6, 2, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.weights is not None
    assert loaded.weights.config() == {"num_classes": 4, "in_channels": 2}
    # Four classes are not MNIST's ten digits: the outputs are named by number.
    assert loaded.weights.classes == ("0", "1", "2", "3")


def test_model_card_metadata(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    folder = LeNet5().save_pretrained(
        tmp_path, metadata={"dataset": "fashion-mnist", "test_accuracy": "88.45"}
    )
    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.library_name == "lenet5"
    assert data.license == "mit"
    assert data.pipeline_tag == "image-classification"
    assert data.datasets == ["fashion-mnist"]
    assert {"lenet5", "model_hub_mixin", "pytorch_model_hub_mixin"} <= set(data.tags)
    (result,) = data.eval_results
    assert (result.task_type, result.metric_type, result.metric_value) == (
        "image-classification",
        "accuracy",
        88.45,
    )
    assert (result.dataset_type, result.dataset_split) == ("fashion-mnist", "test")
    assert data.model_name == "lenet5-fashion-mnist"
    text = (folder / "README.md").read_text()
    assert "model-index" in text
    fashion = DATASETS["fashion-mnist"]  # the normalisation, from the dataset's facts
    assert f"(x / 255 - {fashion.mean!r}) / {fashion.std!r}" in text
    # Without a known accuracy there is no model-index entry.
    plain = ModelCard.load(LeNet5().save_pretrained(tmp_path / "plain") / "README.md")
    assert plain.data.eval_results is None
    assert plain.data.datasets == ["mnist"]


def test_save_pretrained_keeps_an_existing_card_and_writes_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "README.md").write_text("my own card\n")
    LeNet5(num_classes=3).save_pretrained(folder)
    assert (folder / "README.md").read_text() == "my own card\n"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # A save that fails half-way (a header value that is not a string) leaves the folder
    # exactly as it was: the files are written elsewhere first and renamed into place.
    with pytest.raises(TypeError, match="'epochs': 3 is not"):
        LeNet5(num_classes=5).save_pretrained(folder, metadata={"epochs": 3})  # type: ignore[dict-item]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert LeNet5.from_pretrained(folder).num_classes == 3


# ---------------------------------------------------------------------------------- saving


def test_save_pretrained_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = LeNet5(num_classes=7, in_channels=3)
    folder = model.save_pretrained(tmp_path / "saved model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert json.loads((folder / "config.json").read_text()) == {"num_classes": 7, "in_channels": 3}
    loaded = LeNet5.from_pretrained(folder)
    assert (loaded.num_classes, loaded.in_channels) == (7, 3)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    x = torch.randn(4, 3, 28, 28)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    # A bare .safetensors file loads too; its shapes give the constructor arguments.
    bare = tmp_path / "bare.safetensors"
    shutil.copy(folder / "model.safetensors", bare)
    assert LeNet5.from_pretrained(bare).num_classes == 7


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path: Path) -> None:
    model = LeNet5()
    with torch.no_grad():
        model.classifier[5].bias[3] = math.inf  # type: ignore[index]
    target = tmp_path / "out"
    with pytest.raises(WeightsError, match=r"classifier\.5\.bias\); not saved") as info:
        model.save_pretrained(target)
    assert "lower the learning rate" in str(info.value)
    assert not target.exists()  # nothing created, nothing half-written
    existing = tmp_path / "existing"
    LeNet5().save_pretrained(existing)
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    with torch.no_grad():
        model.classifier[5].bias[3] = math.nan  # type: ignore[index]
    with pytest.raises(WeightsError, match="NaN or infinite"):
        model.save_pretrained(existing)
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before  # untouched


# A save that is killed with SIGKILL in the middle: after the mixin wrote its files into
# the staging folder, before anything was put in place.
_KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from lenet5 import LeNet5

    class KilledWhileSaving(LeNet5):
        def _save_pretrained(self, save_directory):
            super()._save_pretrained(save_directory)
            os.kill(os.getpid(), signal.SIGKILL)

    KilledWhileSaving().save_pretrained(sys.argv[1])
    """
)


def test_a_killed_save_leaves_nothing_that_the_next_save_does_not_remove(
    tmp_path: Path,
) -> None:
    folder, private_tmp = tmp_path / "weights", tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(private_tmp), "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_SAVE, str(folder)], env=env, check=False, timeout=120
        )
        assert killed.returncode == -signal.SIGKILL
        # One leftover, hidden inside the target: each save removed the one before it.
        left = [p.name for p in folder.iterdir()]
        assert len(left) == 1, left
        assert left[0].startswith(".lenet5-save.")
        assert left[0].endswith(".tmp")
        assert list(private_tmp.iterdir()) == []  # nothing in the temporary folder
    LeNet5().save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert isinstance(LeNet5.from_pretrained(folder), LeNet5)
