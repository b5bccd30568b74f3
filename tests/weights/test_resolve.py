"""Finding and reading pretrained weights (lenet5.weights._resolve): a registry name, a
folder, a file; and every number and name of a weights folder checked where it enters.

A header with ``std`` 0, NaN or negative used to load (``Predictor`` then printed ``8
(nan%)`` or raised ZeroDivisionError); ``from_pretrained("")`` loaded whatever
``model.safetensors`` the working folder held; a deeply nested ``config.json`` escaped as
RecursionError. Now each is a :class:`WeightsError` naming the file.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from lenet5 import LeNet5
from lenet5.predict import Predictor
from lenet5.weights import WeightsError, get_weights, header_meta, resolve_pretrained

HEADER_KEYS = ["mean", "std", "classes", "dataset", "test_accuracy", "recipe", "notes"]


def _saved(folder: Path, config: str | None = None, **metadata: str) -> Path:
    """A weights folder written the way other programs might: real tensors, any header."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in LeNet5().state_dict().items()}
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt", **metadata})
    if config is not None:
        (folder / "config.json").write_text(config)
    return folder


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"std": "0"}, r"header field 'std' must be a finite number in \(0, "),
        ({"std": "0.0"}, r"header field 'std' must be a finite number in \(0, "),
        ({"std": "-0.3"}, r"header field 'std' must be a finite number in \(0, "),
        ({"std": "nan"}, r"header field 'std' must be a finite number"),
        ({"std": "inf"}, r"header field 'std' must be a finite number"),
        ({"mean": "NaN"}, r"header field 'mean' must be a finite number"),
        ({"mean": "-inf"}, r"header field 'mean' must be a finite number"),
        ({"test_accuracy": "nan"}, r"header field 'test_accuracy' must be a finite number"),
        ({"test_accuracy": "101"}, r"header field 'test_accuracy' must be a finite number"),
        ({"classes": "[" * 5000 + "]" * 5000}, r"'classes' must be a JSON list of strings"),
        ({"classes": '["a", NaN]'}, r"'classes' must be a JSON list of strings"),
        ({"classes": '["' + "x" * 2000 + '"]'}, r"'classes' holds more than"),
    ],
)
def test_a_bad_header_number_or_class_list_is_refused_naming_the_file(
    tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    folder = _saved(tmp_path / "w", **metadata)
    with pytest.raises(WeightsError, match=message) as info:
        LeNet5.from_pretrained(folder)
    assert str(folder / "model.safetensors") in str(info.value)
    with pytest.raises(WeightsError):  # the predictor never gets to print "8 (nan%)"
        Predictor(folder)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 16 levels"),
        ('{"num_classes": ' * 40 + "1" + "}" * 40, "nested deeper than 16 levels"),
        ('{"num_classes": NaN}', "NaN is not JSON"),
        ('{"num_classes": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"num_classes": 10, "pad": "' + "x" * (2**20) + '"}', "larger than 1,048,576 bytes"),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_a_hostile_config_json_is_a_weights_error_naming_it(
    tmp_path: Path, config: str, message: str
) -> None:
    folder = _saved(tmp_path / "w", config=config)
    with pytest.raises(WeightsError, match=message) as info:
        LeNet5.from_pretrained(folder)
    assert f"cannot read model config {folder / 'config.json'}" in str(info.value)


@pytest.mark.parametrize("name", ["", " ", "\t\n", " mnist-v3", "mnist-v3 ", "a\0b"])
def test_an_empty_or_blank_weights_name_never_means_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _saved(tmp_path)  # a model.safetensors in the working folder: must not be loaded
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match=r"empty weights name|spaces around it|NUL"):
        LeNet5.from_pretrained(name)
    assert isinstance(LeNet5.from_pretrained("."), LeNet5)  # said explicitly, it loads


# Header values of every kind: numbers and their edges as text, JSON, anything.
_HEADER_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["nan", "-0", "0", "1e-320", "0.3081", '["a"]', "[]", "{}", "[1]", ""]),
    st.lists(st.text(max_size=3), max_size=12).map(lambda c: str(c).replace("'", '"')),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.one_of(st.sampled_from(HEADER_KEYS), st.text(max_size=5)), _HEADER_VALUES),
    st.sampled_from([None, 1, 10, 47]),
)
def test_any_header_gives_a_valid_record_or_a_weights_error(
    metadata: dict[str, str], num_classes: int | None
) -> None:
    try:
        meta = header_meta(
            metadata, num_classes=num_classes, num_params=1, file_size=1, source="w.safetensors"
        )
    except WeightsError as exc:
        error: WeightsError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error).startswith("w.safetensors: ")
        assert "\n" not in str(error)
        return
    assert math.isfinite(meta["mean"])
    assert math.isfinite(meta["std"])
    assert meta["std"] > 0
    assert all(isinstance(c, str) for c in meta["classes"])
    if num_classes is not None:
        assert len(meta["classes"]) == num_classes
    accuracy = meta["test_accuracy"]
    assert accuracy is None or 0 <= accuracy <= 100


# --------------------------------------------------------------------------- local sources


@pytest.mark.parametrize("name", ["DEFAULT", "mnist-v1", "fashion-v1"])
def test_from_pretrained_builds_from_the_record_and_keeps_it(name: str) -> None:
    model = LeNet5.from_pretrained(name)
    assert model.weights is get_weights(name)
    assert model.num_classes == len(model.weights.classes)
    assert model.in_channels == model.weights.in_channels


def test_refuses_pickle_and_unknown_sources(tmp_path: Path) -> None:
    pt = tmp_path / "weights.pt"
    torch.save(LeNet5().state_dict(), pt)
    with pytest.raises(WeightsError, match=r"only \.safetensors"):
        LeNet5.from_pretrained(pt)
    with pytest.raises(WeightsError, match="not a weights name"):
        LeNet5.from_pretrained(str(tmp_path / "missing-folder" / "x"))
    with pytest.raises(WeightsError, match=r"holds no model\.safetensors"):
        LeNet5.from_pretrained(tmp_path)


def test_a_special_file_as_weights_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "org" / "weights"  # also of the form of a Hub repo id
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            LeNet5.from_pretrained(fifo)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the reader go
        pytest.fail("from_pretrained opened a FIFO and waited for a writer", pytrace=False)
    (error,) = outcome
    assert isinstance(error, WeightsError)
    assert str(error) == f"{fifo} is neither a folder nor a regular file; give weights files"


def _saved_mnist_v1(tmp_path: Path, **metadata: str) -> Path:
    folder = tmp_path / "saved"
    folder.mkdir()
    tensors = {
        k: v.contiguous() for k, v in LeNet5.from_pretrained("mnist-v1").state_dict().items()
    }
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt", **metadata})
    return folder


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"mean": "about 0.13"}, "header field 'mean' must be a number, got 'about 0.13'"),
        ({"classes": "[0, 1"}, "header field 'classes' must be a JSON list of strings"),
        ({"classes": "[0, 1]"}, "header field 'classes' must be a JSON list of strings"),
    ],
)
def test_malformed_header_fields_are_named(
    tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    folder = _saved_mnist_v1(tmp_path, **metadata)
    with pytest.raises(WeightsError, match=f": {message}$"):
        LeNet5.from_pretrained(folder)


def test_an_unreadable_config_json_is_named(tmp_path: Path) -> None:
    folder = _saved_mnist_v1(tmp_path)
    (folder / "config.json").write_text("{num_classes: 10")
    with pytest.raises(WeightsError, match=r"^cannot read model config .*config.json: "):
        LeNet5.from_pretrained(folder)


def test_the_record_of_local_weights(tmp_path: Path) -> None:
    folder = _saved_mnist_v1(tmp_path)
    resolved = resolve_pretrained(folder)
    assert resolved.config == {"num_classes": 10, "in_channels": 1}
    record = resolved.weights
    assert record.recipe_mean_accuracy is None  # no seeds recorded for a file of one's own
    assert record.verified_path() == folder / "model.safetensors"
    shutil.rmtree(folder)
    with pytest.raises(WeightsError, match=r"are missing \(.*\); it was moved or deleted$"):
        record.verified_path()
