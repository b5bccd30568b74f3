"""Prediction on real pictures: the MNIST-style preprocessing and ``lenet5 predict``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy
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
    assert correct == len(expected), results  # the pictures are drawn the same every time
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


# ------------------------------------------------------- hostile and unusual inputs


def _line(path: Path, *, ink: int = 230, paper: int = 20) -> Image.Image:
    """An 8-bit picture of a "1": a slanted stroke."""
    picture = Image.new("L", (60, 80), paper)
    ImageDraw.Draw(picture).line([(30, 8), (22, 72)], fill=ink, width=7)
    picture.save(path)
    return picture


def _png_bomb(path: Path, width: int, height: int) -> Path:
    """A real, valid PNG of ``width x height`` black 1-bit pixels: kilobytes on disk, up to
    hundreds of megabytes once decoded (what Pillow's decompression-bomb guard is for)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def _bombs(folder: Path) -> tuple[Path, Path]:
    """One bomb at each level of Pillow's guard: above MAX_IMAGE_PIXELS (Pillow warns) and
    above twice that (Pillow raises)."""
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, which the sizes assume
    return (
        _png_bomb(folder / "bomb-warning.png", 10_000, 10_000),
        _png_bomb(folder / "bomb-error.png", 20_000, 20_000),
    )


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


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[dict[str, tuple[Path, str]]]:
    """Real files of every kind that must be refused, each with the message expected."""
    good = tmp_path / "good.png"
    _line(good)
    data = good.read_bytes()
    warning, error = _bombs(tmp_path)
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    for i in range(60, len(corrupt) - 20):  # the image data, not the signature or IHDR
        corrupt[i] ^= 0x5A
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(numpy.full((20, 20), numpy.nan, numpy.float32)).save(tmp_path / "nan.tif")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder.png").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "socket.png"))
    unopened = "not a regular file but {}; it was not opened"
    bomb = "refused as a possible decompression bomb: it declares {:,} pixels, more than "
    bomb += "PIL.Image.MAX_IMAGE_PIXELS (89,478,485)"
    yield {
        "warning": (warning, bomb.format(100_000_000)),
        "error": (error, bomb.format(400_000_000)),
        "truncated": (tmp_path / "truncated.png", "not a readable image (image file is truncated)"),
        "corrupt": (tmp_path / "corrupt.png", "not a readable image ("),
        "empty": (tmp_path / "empty.png", "the file is empty (0 bytes)"),
        "nan": (tmp_path / "nan.tif", "the image holds NaN or infinite values"),
        "fifo": (tmp_path / "fifo.png", unopened.format("a named pipe (FIFO)")),
        "folder": (tmp_path / "folder.png", unopened.format("a folder")),
        "socket": (tmp_path / "socket.png", unopened.format("a socket")),
        "device": (Path(os.devnull), unopened.format("a character device")),
        "missing": (tmp_path / "missing.png", "file not found"),
    }
    sock.close()


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


def test_the_cli_reports_each_bad_file_on_one_line_and_never_hangs(
    tmp_path: Path,
    hostile: dict[str, tuple[Path, str]],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kinds = ["warning", "error", "truncated", "corrupt", "empty", "nan", "fifo", "socket"]
    names = [hostile[k][0].name for k in kinds]
    _line(tmp_path / "bright-on-dark.png")
    sixteen = numpy.array(Image.open(tmp_path / "good.png")).astype(numpy.uint16) * 257
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    good = ["good.png", "sixteen.png"]
    args = ["predict", good[0], *names, os.devnull, good[1], "--weights", "mnist-v1"]
    # A hang would end in subprocess.TimeoutExpired: loud, not a wall-clock assert.
    out = run_cli(*args, "--backend", "torch", cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    expected = [*(hostile[k] for k in kinds), hostile["device"]]
    assert len(lines) == len(expected), out.stderr
    for line, (path, message) in zip(lines, expected, strict=True):
        name = path.name if path.parent == tmp_path else str(path)
        assert line.startswith(f"lenet5 predict: error: {name}: {message}"), line
    printed = out.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in printed] == good
    assert all(line.split(": ")[1].startswith("1 (") for line in printed), printed


def test_decompression_bombs_are_refused_at_both_levels_of_pillows_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenet5.preprocess import load_image

    for bomb in _bombs(tmp_path):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning escaping would fail here
            with pytest.raises(ImageError, match="decompression bomb") as info:
                to_mnist(bomb)
        assert str(info.value).startswith(f"{bomb}: refused as a possible decompression bomb")
        with pytest.raises(ImageError, match="decompression bomb"):
            load_image(bomb)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's setting is left alone
    # The limit is read at each call: a program that lowers it is obeyed ...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _line(tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"4,800 pixels, more than .*MAX_IMAGE_PIXELS \(1,000\)"):
        to_mnist(tmp_path / "small.png")
    # ... and one that raises it gets the picture read (a black one: blank, not a bomb).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**9)
    with pytest.raises(ImageError, match="blank"):
        to_mnist(tmp_path / "bomb-warning.png")


def test_predictor_predict_raises_naming_the_input(tmp_path: Path) -> None:
    predictor = Predictor("mnist-v1", backend="torch")
    good = tmp_path / "good.png"
    picture = _line(good)
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


@pytest.mark.parametrize(
    ("name", "mode", "convert"),
    [
        ("sixteen.png", "I;16", lambda v: v.astype(numpy.uint16) * 257),
        ("sixteen.tif", "I;16", lambda v: v.astype(numpy.uint16) * 257),
        ("int32-16-bit-range.tif", "I", lambda v: v.astype(numpy.int32) * 257),
        ("int32-8-bit-range.tif", "I", lambda v: v.astype(numpy.int32)),
        ("float-0-1.tif", "F", lambda v: v.astype(numpy.float32) / 255),
        ("float-0-255.tif", "F", lambda v: v.astype(numpy.float32)),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_16_bit_32_bit_and_float_pictures_are_read_in_their_range(
    tmp_path: Path, name: str, mode: str, convert: Callable[[numpy.ndarray], numpy.ndarray]
) -> None:
    """The same picture stored with more bits gives exactly the 8-bit picture's input.

    (Pillow's own conversion to 8 bits clips: a dark 16-bit sheet, 20 * 257 = 5140, turns
    white, and float values in [0, 1] turn black, so both used to be refused as blank.)
    """
    eight_bit = _line(tmp_path / "eight.png")
    path = tmp_path / name
    Image.fromarray(convert(numpy.array(eight_bit))).save(path)
    assert Image.open(path).mode == mode
    assert torch.equal(to_mnist(path), to_mnist(eight_bit))
    values = torch.from_numpy(convert(numpy.array(eight_bit)).astype(numpy.float32))
    assert torch.equal(to_mnist(values), to_mnist(eight_bit))  # the same rule for tensors


def test_huge_pictures_are_box_averaged_first_whatever_their_mode() -> None:
    """Above 4096x4096 pixels a picture is reduced by an integer factor before anything
    else, in every mode (Pillow's reduce() for most, an average for 16-bit pictures)."""
    big = Image.new("L", (4200, 4200), 235)  # 17.6 million pixels: reduced by 2
    ImageDraw.Draw(big).line([(2100, 500), (1900, 3700)], fill=25, width=300)
    expected = to_mnist(big.reduce(2))
    assert torch.equal(to_mnist(big), expected)
    sixteen = Image.fromarray(numpy.array(big).astype(numpy.uint16) * 257)
    floats = Image.fromarray(numpy.array(big).astype(numpy.float32) / 255)
    for picture in (big.convert("RGBA"), big.convert("P"), sixteen, floats):
        assert torch.equal(to_mnist(picture), expected), picture.mode
    dithered = to_mnist(big.convert("1"))  # Pillow dithers to 1 bit: the same stroke, roughly
    assert dithered.float().sum() > 0.5 * expected.float().sum()
