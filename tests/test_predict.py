"""Predictor and predict_files (lenet5.predict): real pictures classified, the weights'
normalisation and class names used, every bad file reported with its path."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from helpers import draw_one
from lenet5 import LeNet5
from lenet5.predict import Predictor
from lenet5.preprocess import ImageError


def test_predictor_api() -> None:
    predictor = Predictor("DEFAULT")
    picture = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(picture).line([(50, 10), (50, 90)], fill=255, width=10)
    (prediction,) = predictor.predict([picture], top_k=3)
    assert prediction.prediction == 1
    assert prediction.label == "1"
    probabilities = [c.probability for c in prediction.top_k]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert prediction.to_dict()["top_k"][0]["class"] == 1


def test_predictor_takes_normalisation_and_classes_from_model_weights(tmp_path: Path) -> None:
    from lenet5.data import DATASETS

    fashion = Predictor("fashion-v1", backend="torch")
    assert fashion.weights is fashion.model.weights
    info = DATASETS["fashion-mnist"]
    assert (fashion.mean, fashion.std, fashion.classes) == (info.mean, info.std, info.classes)
    shoe = Image.new("L", (120, 60), 0)
    ImageDraw.Draw(shoe).rectangle((10, 20, 110, 45), fill=255)
    (prediction,) = fashion.predict([shoe], top_k=2)
    assert prediction.label in info.classes
    # A saved folder: the class names and normalisation come from its header.
    names = [f"digit {i}" for i in range(10)]
    folder = LeNet5.from_pretrained("mnist-v1").save_pretrained(
        tmp_path / "named", metadata={"classes": __import__("json").dumps(names), "mean": "0.125"}
    )
    named = Predictor(folder, backend="torch")
    assert named.classes == tuple(names)
    assert named.mean == 0.125
    assert named.std == DATASETS["mnist"].std
    one = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(one).line([(50, 10), (50, 90)], fill=255, width=10)
    assert named.predict([one])[0].label == "digit 1"


def _within(seconds: float, fifos: list[Path], call: Callable[[], Any]) -> Any:
    """``call()``, failing loudly if it is still running after ``seconds`` (a hang)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:  # give a reader blocked on a FIFO a writer, so the thread ends
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still running after {seconds} s: a special file was opened", pytrace=False)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_every_bad_file_is_reported_with_its_path_and_the_others_classified(
    tmp_path: Path, hostile: dict[str, tuple[Path, str]]
) -> None:
    from lenet5.predict import Failure, predict_files

    good = tmp_path / "good.png"
    paths = [good, *(path for path, _ in hostile.values()), good]
    fifos = [hostile["fifo"][0]]
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results, failures = _within(
            60, fifos, lambda: predict_files(paths, weights="mnist-v1", backend="torch")
        )
    assert [w.message for w in caught] == []  # the bomb at the warning level is refused, quietly
    assert warnings.filters == filters  # and the filters are as they were
    assert [(r.path, r.prediction) for r in results] == [(str(good), 1), (str(good), 1)]
    assert [f.path for f in failures] == [path for path, _ in hostile.values()]
    for failure, (kind, (path, message)) in zip(failures, hostile.items(), strict=True):
        assert isinstance(failure, Failure)
        assert failure.message.startswith(message), (kind, failure.message)
        assert str(failure) == f"{path}: {failure.message}"
        assert "\n" not in failure.message
        path_again, message_again = failure  # still a (path, message) tuple
        assert (path_again, message_again) == (path, failure.message)


def test_predictor_predict_raises_naming_the_input(tmp_path: Path) -> None:
    predictor = Predictor("mnist-v1", backend="torch")
    good = tmp_path / "good.png"
    picture = draw_one(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ImageError) as info:
        predictor.predict([good, truncated])
    assert str(info.value).startswith(f"{truncated}: not a readable image")
    blank = Image.new("L", (30, 30), 0)
    with pytest.raises(ImageError, match=r"^images\[1\]: the image is blank"):
        predictor.predict([picture, blank])
    assert predictor.predict([]) == []
    results, failures = predictor.predict_files([good, truncated])
    assert [r.prediction for r in results] == [1]
    assert [f.path for f in failures] == [truncated]


def test_predict_files_when_every_file_fails(tmp_path: Path) -> None:
    from lenet5.predict import Predictor

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    results, failures = Predictor("DEFAULT", backend="torch").predict_files(
        [tmp_path / "missing.png", empty]
    )
    assert results == []
    assert [f.message for f in failures] == ["file not found", "the file is empty (0 bytes)"]
