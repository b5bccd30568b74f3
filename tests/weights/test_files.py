"""Safetensors files and the checks before loading (lenet5.weights._files): every missing,
unexpected, misshaped or non-floating tensor named; config.json against the tensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lenet5 import LeNet5
from lenet5.weights import REGISTRY, WeightsError, load_weights, read_safetensors


def test_oversized_config_is_refused_before_any_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[int, str]] = []
    init = LeNet5.__init__

    def spy(self: LeNet5, num_classes: int = 10, in_channels: int = 1) -> None:
        built.append((num_classes, torch.empty(0).device.type))  # the device it is built on
        init(self, num_classes, in_channels)

    folder = LeNet5().save_pretrained(tmp_path / "huge")
    (folder / "config.json").write_text(json.dumps({"num_classes": 90_000}))
    state = LeNet5().state_dict()
    monkeypatch.setattr(LeNet5, "__init__", spy)
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(folder)
    message = str(info.value)
    assert str(folder / "config.json") in message
    assert "num_classes=90000" in message
    assert "classifier.5.weight" in message
    assert built == []
    # Without the tensor that contradicts it, strict loading names what is missing, and the
    # only model built is a skeleton on the meta device, which allocates nothing.
    tensors = {k: v for k, v in state.items() if not k.startswith("classifier.5")}
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"missing: classifier\.5\.bias, classifier\.5\.weight"):
        LeNet5.from_pretrained(folder)
    assert built == [(90_000, "meta")]
    # Beyond any LeNet-5, the config is refused as it is read (naming 10**8 classes alone
    # would take minutes and gigabytes).
    (folder / "config.json").write_text(json.dumps({"num_classes": 100_000_000}))
    with pytest.raises(WeightsError, match=r"num_classes=100000000 is more than lenet5 loads"):
        LeNet5.from_pretrained(folder)
    assert built == [(90_000, "meta")]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"num_classes": 7}, "num_classes=7"),
        ({"in_channels": 3}, "in_channels=3"),
        ({"num_classes": 0}, "positive integer"),
        ({"num_classes": "10"}, "positive integer"),
        ([10, 1], "JSON object"),
    ],
    ids=str,
)
def test_config_json_must_agree_with_the_tensors(
    tmp_path: Path, config: object, needle: str
) -> None:
    folder = LeNet5().save_pretrained(tmp_path)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=needle) as info:
        LeNet5.from_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)
    assert "\n" not in str(info.value)


def test_non_floating_tensors_are_refused(tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in LeNet5().state_dict().items()}
    state["features.0.weight"] = torch.ones(6, 1, 5, 5, dtype=torch.int32)
    state["classifier.5.bias"] = torch.zeros(10, dtype=torch.bool)
    path = tmp_path / "ints.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(path)
    message = str(info.value)
    assert message.startswith(f"{path} does not fit LeNet5: ")
    assert "not floating point" in message
    assert "features.0.weight (torch.int32)" in message
    assert "classifier.5.bias (torch.bool)" in message
    # The same tensors in a folder with its config.json: the folder is named.
    folder = tmp_path / "ints"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"num_classes": 10, "in_channels": 1}))
    with pytest.raises(WeightsError, match="not floating point") as info:
        LeNet5.from_pretrained(folder)
    assert str(info.value).startswith(f"{folder} does not fit LeNet5: ")


def test_missing_extra_and_misshaped_tensors_are_named(tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in LeNet5().state_dict().items()}
    del state["classifier.3.bias"]
    state["features.9.weight"] = torch.zeros(3)
    state["classifier.1.weight"] = torch.zeros(120, 255)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError) as info:
        LeNet5.from_pretrained(path)
    message = str(info.value)
    assert "missing: classifier.3.bias" in message
    assert "unexpected: features.9.weight" in message
    assert "classifier.1.weight (file (120, 255), model (120, 256))" in message


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    data = REGISTRY["mnist-v1"].path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        LeNet5.from_pretrained(tmp_path)


def test_reading_weights_that_are_not_there_or_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"^weights file .*missing\.safetensors not found$"):
        read_safetensors(tmp_path / "missing.safetensors")
    source = LeNet5.from_pretrained("mnist-v1")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    loaded = load_weights(LeNet5(), path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    from_dict = load_weights(LeNet5(), source.state_dict())
    assert torch.equal(
        from_dict.state_dict()["classifier.5.bias"], cast(nn.Linear, source.classifier[5]).bias
    )
    with pytest.raises(WeightsError, match=r"^state dict does not fit LeNet5: "):
        load_weights(LeNet5(num_classes=5), source.state_dict())
