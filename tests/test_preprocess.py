"""Pictures made MNIST-like (lenet5.preprocess): to_mnist on real digits drawn as photos,
MNIST's geometry, every mode and range, and hostile pictures refused in one line."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image, ImageDraw

from helpers import draw_digit, draw_one, png_bombs
from lenet5 import LeNet5
from lenet5.data import ImageSet
from lenet5.preprocess import ImageError, preprocess, to_mnist
from lenet5.training import evaluate

# --------------------------------------------------------------------- MNIST-like pictures


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
    drawn = draw_digit(7, tmp_path / "seven.png", size=120, dark_on_light=True, colour=(10, 10, 10))
    photo = draw_digit(
        0, tmp_path / "zero.jpg", size=200, dark_on_light=False, colour=(255, 220, 0)
    )
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


# ------------------------------------------------------------ unusual and hostile pictures


def test_decompression_bombs_are_refused_at_both_levels_of_pillows_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenet5.preprocess import load_image

    for bomb in png_bombs(tmp_path):
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
    draw_one(tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"4,800 pixels, more than .*MAX_IMAGE_PIXELS \(1,000\)"):
        to_mnist(tmp_path / "small.png")
    # ... and one that raises it gets the picture read (a black one: blank, not a bomb).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**9)
    with pytest.raises(ImageError, match="blank"):
        to_mnist(tmp_path / "bomb-warning.png")


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
    eight_bit = draw_one(tmp_path / "eight.png")
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


def test_a_symlink_loop_is_refused_naming_the_cause(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(
        ImageError, match=r"a\.png: a symbolic link loop \(it never reaches a file\)$"
    ):
        to_mnist(a)


def _stroke(values: torch.Tensor) -> torch.Tensor:
    """A vertical stroke of the highest value over the lowest (a digit 1)."""
    image = torch.full((40, 30), float(values.min()))
    image[5:35, 12:18] = float(values.max())
    return image


def test_tensor_images_in_unusual_ranges_shapes_and_types() -> None:
    reference = to_mnist(_stroke(torch.tensor([0.0, 1.0])))
    # A normalised image (negative values) is stretched from its minimum to its maximum.
    assert torch.equal(to_mnist(_stroke(torch.tensor([-0.4242, 2.8215]))), reference)
    assert torch.equal(to_mnist(_stroke(torch.tensor([0.0, 1.0]))[None]), reference)  # (1, H, W)
    assert torch.equal(to_mnist(_stroke(torch.tensor([0.0, 1.0])).bool()), reference)
    with pytest.raises(ImageError, match=r"got \(2, 40, 30\)$"):
        to_mnist(torch.zeros(2, 40, 30))
    with pytest.raises(ImageError, match=r"^the image is empty$"):
        to_mnist(torch.zeros(0, 5))


def test_a_picture_in_a_mode_without_greyscale_is_refused() -> None:
    from PIL import Image

    with pytest.raises(ImageError, match=r"^pictures in mode 'LAB' cannot be made greyscale$"):
        to_mnist(Image.new("LAB", (28, 28)))
