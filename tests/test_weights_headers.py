"""Every number and name of a weights folder is checked where it enters (issue #26).

A header with ``std`` 0, NaN or negative used to load (``Predictor`` then printed ``8
(nan%)`` or raised ZeroDivisionError); ``from_pretrained("")`` loaded whatever
``model.safetensors`` the working folder held; a deeply nested ``config.json`` escaped as
RecursionError; a diverged model was saved with its NaN weights; and a save killed with
SIGKILL left its staging folder in ``/tmp`` every time. Now each is a :class:`WeightsError`
naming the file (or nothing is left behind).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from lenet5 import LeNet5
from lenet5.predict import Predictor
from lenet5.weights import WeightsError, header_meta

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


# ------------------------------------------------------------------------------ saving


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


def test_a_live_writers_staging_folder_is_kept(tmp_path: Path) -> None:
    from lenet5._io import remove_stale_leftovers, temporary_folder

    with temporary_folder(tmp_path, "lenet5-save") as mine:
        LeNet5().save_pretrained(tmp_path)  # another save in the same folder meanwhile
        assert mine.is_dir()  # ours (a live process's) is not removed
        assert remove_stale_leftovers(tmp_path) == []
    assert not mine.exists()
