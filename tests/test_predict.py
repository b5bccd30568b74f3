"""Prediction on real pictures: the MNIST-style preprocessing and ``lenet5 predict``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from lenet5 import LeNet5
from lenet5.data import ImageSet
from lenet5.predict import Predictor
from lenet5.preprocess import ImageError, preprocess, to_mnist
from lenet5.training import evaluate


def _picture(
    digit: torch.Tensor,
    *,
    scale: int,
    canvas: tuple[int, int],
    offset: tuple[int, int],
    ink: tuple[int, int, int],
    paper: tuple[int, int, int],
) -> Image.Image:
    """Render an MNIST digit as an ordinary photo-like picture: big, coloured, off-centre."""
    mask = Image.fromarray(digit.numpy(), mode="L").resize(
        (28 * scale, 28 * scale), Image.Resampling.BICUBIC
    )
    picture = Image.new("RGB", canvas, paper)
    picture.paste(Image.new("RGB", mask.size, ink), offset, mask)
    return picture


def test_to_mnist_recovers_mnist_digits_from_pictures(mnist_test: ImageSet) -> None:
    """MNIST digits, enlarged, recoloured and moved, come back as the model sees MNIST."""
    model = LeNet5.from_pretrained("DEFAULT")
    images = mnist_test.images[:200]
    styles = [
        dict(scale=4, canvas=(200, 160), offset=(10, 5), ink=(0, 0, 0), paper=(255, 255, 255)),
        dict(scale=9, canvas=(400, 300), offset=(150, 20), ink=(255, 255, 255), paper=(0, 0, 0)),
        dict(scale=3, canvas=(90, 120), offset=(0, 30), ink=(30, 30, 200), paper=(250, 240, 200)),
    ]
    baseline = evaluate(model, ImageSet(images, mnist_test.labels[:200])).predictions
    for style in styles:
        redrawn = torch.stack([to_mnist(_picture(d, **style)) for d in images])  # type: ignore[arg-type]
        assert redrawn.dtype == torch.uint8
        assert redrawn.shape == (200, 28, 28)
        predictions = evaluate(model, ImageSet(redrawn, mnist_test.labels[:200])).predictions
        agreement = (predictions == baseline).float().mean().item()
        assert agreement >= 0.95, (style, agreement)


def test_to_mnist_follows_mnist_geometry() -> None:
    picture = Image.new("L", (300, 100), 255)
    ImageDraw.Draw(picture).rectangle((200, 10, 219, 89), fill=0)  # a tall dark bar, far right
    out = to_mnist(picture).float()
    rows = torch.nonzero(out.sum(dim=1) > 0).flatten()
    cols = torch.nonzero(out.sum(dim=0) > 0).flatten()
    assert int(rows[-1] - rows[0]) + 1 == 20  # the long side is scaled to 20 pixels
    assert int(cols[-1] - cols[0]) + 1 <= 7  # the aspect ratio is kept
    total = out.sum()
    cy = (out.sum(dim=1) * torch.arange(28)).sum() / total
    cx = (out.sum(dim=0) * torch.arange(28)).sum() / total
    assert abs(float(cy) - 13.5) <= 1.0
    assert abs(float(cx) - 13.5) <= 1.0
    assert float(out.max()) == 255  # white on black


def test_transparent_and_tensor_inputs() -> None:
    rgba = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((20, 10, 60, 70), outline=(0, 0, 0, 255), width=8)
    from_alpha = to_mnist(rgba)
    grey = Image.new("L", (80, 80), 255)
    ImageDraw.Draw(grey).ellipse((20, 10, 60, 70), outline=0, width=8)
    assert torch.equal(from_alpha, to_mnist(grey))
    tensor = torch.from_numpy(__import__("numpy").array(grey)).float() / 255
    assert torch.equal(to_mnist(tensor), to_mnist(grey))
    batch = preprocess([grey, rgba])
    assert batch.shape == (2, 1, 28, 28)
    assert batch.dtype == torch.float32


def test_blank_and_unreadable_images_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="blank"):
        to_mnist(Image.new("RGB", (50, 50), (128, 128, 128)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageError, match="not a readable image"):
        to_mnist(broken)
    with pytest.raises(ImageError, match="not found"):
        to_mnist(tmp_path / "missing.png")


def _draw(
    digit: int, path: Path, *, size: int, dark_on_light: bool, colour: tuple[int, int, int]
) -> Path:
    """Hand-draw a thick-stroked digit as a person would with a mouse."""
    strokes = {
        0: [("ellipse", (0.28, 0.12, 0.72, 0.88))],
        1: [("line", [(0.5, 0.1), (0.5, 0.9)])],
        7: [("line", [(0.25, 0.15), (0.75, 0.15), (0.42, 0.9)])],
    }[digit]
    paper = (255, 255, 255) if dark_on_light else (0, 0, 0)
    image = Image.new("RGB", (size, int(size * 1.3)), paper)
    draw = ImageDraw.Draw(image)
    w, h = image.size
    width = max(2, size // 9)
    for kind, coords in strokes:
        if kind == "ellipse":
            x0, y0, x1, y1 = coords  # type: ignore[misc]
            draw.ellipse((x0 * w, y0 * h, x1 * w, y1 * h), outline=colour, width=width)
        else:
            draw.line([(x * w, y * h) for x, y in coords], fill=colour, width=width, joint="curve")  # type: ignore[union-attr]
    image.save(path)
    return path


def test_predict_cli_on_drawn_digits(tmp_path: Path) -> None:
    folder = tmp_path / "my digits"
    folder.mkdir()
    expected = {}
    for digit in (0, 1, 7):
        for size, dark, colour in ((60, True, (20, 20, 20)), (300, False, (255, 220, 0))):
            name = f"{digit}-{size}.png" if dark else f"{digit}-{size}.jpg"
            _draw(digit, folder / name, size=size, dark_on_light=dark, colour=colour)
            expected[str(folder / name)] = digit
    out = subprocess.run(
        [sys.executable, "-m", "lenet5", "predict", str(folder), "--json", "--top-k", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    results = json.loads(out.stdout)
    assert len(results) == len(expected)
    for item in results:
        assert set(item) >= {"path", "prediction", "probability", "top_k"}
        assert isinstance(item["prediction"], int)
        assert len(item["top_k"]) == 2
        assert item["top_k"][0]["class"] == item["prediction"]
        assert 0 < item["probability"] <= 1
    correct = sum(item["prediction"] == expected[item["path"]] for item in results)
    assert correct >= len(expected) - 1, results
    text = subprocess.run(
        [sys.executable, "-m", "lenet5", "predict", str(folder / "7-60.png")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert text.startswith(f"{folder / '7-60.png'}: ")


def test_predict_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lenet5.cli import main

    def run(*args: str) -> int:
        try:
            return main(["predict", *args])
        except SystemExit as exit:
            return int(exit.code or 0)

    empty = tmp_path / "empty dir"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    good = _draw(1, tmp_path / "one.png", size=80, dark_on_light=True, colour=(0, 0, 0))
    for args, needle in (
        ((str(tmp_path / "missing.png"),), "no such file"),
        ((str(empty),), "holds no images"),
        ((str(tmp_path / "*.gif"),), "no files match"),
        ((str(good), "--weights", str(tmp_path / "notes.txt")), "only .safetensors"),
    ):
        assert run(*args) == 1, args
        error = capsys.readouterr().err
        assert "Traceback" not in error
        assert len(error.strip().splitlines()) == 1
        assert needle in error
    # One bad file among good ones: the good ones are still classified.
    assert run(str(good), str(broken), "--json") == 1
    captured = capsys.readouterr()
    assert [r["path"] for r in json.loads(captured.out)] == [str(good)]
    assert "broken.png" in captured.err
    assert "Traceback" not in captured.err
    assert run(str(good), "--top-k", "0") == 2


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


@pytest.mark.parametrize("name", ["DEFAULT", "fashion-v1"])
def test_weights_transforms_equal_to_mnist_and_normalisation(
    name: str, tmp_path: Path, mnist_test: ImageSet
) -> None:
    """``weights.transforms()`` prepares pictures exactly as to_mnist + that set's normalisation."""
    from lenet5.data import normalize
    from lenet5.weights import get_weights

    weights = get_weights(name)
    transform = weights.transforms()
    style = dict(
        scale=5, canvas=(180, 200), offset=(20, 30), ink=(40, 40, 160), paper=(250, 245, 230)
    )
    pil = _picture(mnist_test.images[0], **style)  # type: ignore[arg-type]
    drawn = _draw(7, tmp_path / "seven.png", size=120, dark_on_light=True, colour=(10, 10, 10))
    photo = _draw(0, tmp_path / "zero.jpg", size=200, dark_on_light=False, colour=(255, 220, 0))
    grey = torch.from_numpy(__import__("numpy").array(pil.convert("L")))  # uint8 (H, W)
    colour = torch.from_numpy(__import__("numpy").array(pil)).permute(2, 0, 1)  # uint8 (3, H, W)
    pictures = [pil, drawn, str(photo), grey, colour, grey.float() / 255]
    for picture in pictures:
        expected = normalize(to_mnist(picture)[None], weights.mean, weights.std)[0]
        got = transform(picture)
        assert got.shape == (1, 28, 28)
        assert got.dtype == torch.float32
        assert torch.equal(got, expected)
    # preprocess() is the same transform over a batch.
    batch = preprocess(pictures, weights.mean, weights.std)
    assert torch.equal(batch, torch.stack([transform(p) for p in pictures]))


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
