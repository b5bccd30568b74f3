"""The docs' "Draw a digit" page (docs/demo.rst) in a real browser, against the library.

The built HTML is served by a plain ``http.server`` (no special headers, as a user serves
it) and driven in headless Chromium. The page's JavaScript port of ``to_mnist`` must give
the same uint8 28x28 pixels as Python, and its ONNX Runtime Web model the same labels and
probabilities (within 1e-4) as :class:`lenet5.predict.Predictor`, on the canvas the mouse
drew on and on many rendered pictures. Without Chromium and ChromeDriver the browser tests
skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import itertools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet5.data import ImageSet
from lenet5.predict import Predictor
from lenet5.preprocess import ImageError, to_mnist

# One browser for the module: with ``pytest -n N --dist loadgroup`` these tests share a
# worker, and the fixtures are session-scoped because that worker may run other modules'
# tests in between (module-scoped ones were torn down and Chromium started again each time).
pytestmark = pytest.mark.xdist_group("demo_browser")

TOLERANCE = 1e-4
R = Image.Resampling

# The page's API, on a batch: base64 pictures in, pixels (base64), label, probabilities out.
CLASSIFY_JS = """
const [items, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  await window.lenet5Demo.ready;
  const out = [];
  for (const [data, width, height] of items) {
    const bytes = await (await fetch("data:application/octet-stream;base64," + data)).arrayBuffer();
    const rgba = new Uint8ClampedArray(bytes);
    try {
      const pixels = window.lenet5Demo.preprocess(rgba, width, height);
      const { label, probabilities } = await window.lenet5Demo.classify(rgba, width, height);
      out.push({ pixels: btoa(String.fromCharCode(...pixels)), label, probabilities });
    } catch (error) {
      out.push({ error: error.name + ": " + error.message });
    }
  }
  return out;
})().then(done, (error) => done({ fatal: String(error) }));
"""
CANVAS_JS = """
const pad = document.querySelector("canvas.lenet5-demo__pad");
const image = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height);
let text = "";
for (let i = 0; i < image.data.length; i += 8192) {
  text += String.fromCharCode(...image.data.subarray(i, i + 8192));
}
return [btoa(text), image.width, image.height];
"""
SETTLED_JS = """
const root = document.getElementById("lenet5-demo");
return root.dataset.state === "idle" && root.dataset.drawn === root.dataset.shown
  ? { label: root.dataset.label, probabilities: root.dataset.probabilities,
      drawn: root.dataset.drawn, shown: document.querySelector(".lenet5-demo__label").textContent }
  : null;
"""


@pytest.fixture(scope="session")
def browser() -> tuple[str, str]:
    """Chromium and ChromeDriver, or a skip (a failure under CI) saying what is missing.

    Checked before the docs are built, so that a machine without a browser skips at once.
    """
    chromium = next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )
    driver = shutil.which("chromedriver")
    selenium = importlib.util.find_spec("selenium")
    if chromium and driver and selenium:
        return chromium, driver
    missing = [n for n, ok in (("chromium", chromium), ("chromedriver", driver)) if not ok]
    missing += [] if selenium else ["the selenium package"]
    reason = f"the browser tests need {', '.join(missing)}"
    reason += " (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site(built_docs: Path) -> Iterator[str]:
    """The built docs on a plain static server, as ``python -m http.server`` serves them."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(built_docs))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def page(browser: tuple[str, str], site: str) -> Iterator[Any]:
    """Headless Chromium on the demo page, once ``lenet5Demo.ready`` has resolved."""
    chromium, chromedriver = browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,1000")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.set_script_timeout(120)
        driver.get(f"{site}/demo.html")
        outcome = driver.execute_async_script(
            "const done = arguments[0];"
            "window.lenet5Demo.ready.then(() => done('ok'), (e) => done(String(e)));"
        )
        assert outcome == "ok", f"lenet5Demo.ready rejected: {outcome}"
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def predictor() -> Predictor:
    return Predictor("DEFAULT")


def _classify_in_page(page: Any, pictures: list[np.ndarray]) -> list[dict[str, Any]]:
    items = [[base64.b64encode(p.tobytes()).decode(), p.shape[1], p.shape[0]] for p in pictures]
    results = page.execute_async_script(CLASSIFY_JS, items)
    assert isinstance(results, list), results
    return results


def _check_against_python(predictor: Predictor, pictures: list[np.ndarray], results: list) -> None:
    """Same pixels as to_mnist, same label and probabilities as Predictor, picture by picture."""
    images = [Image.fromarray(p, "RGBA") for p in pictures]
    predictions = predictor.predict(images, top_k=10)
    for i, (image, result, prediction) in enumerate(zip(images, results, predictions, strict=True)):
        where = f"picture {i} ({image.width}x{image.height})"
        assert "error" not in result, f"{where}: {result['error']}"
        pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8).reshape(28, 28)
        expected = to_mnist(image).numpy()
        assert np.array_equal(pixels, expected), f"{where}: {(pixels != expected).sum()} pixels"
        probabilities = [0.0] * 10
        for candidate in prediction.top_k:
            probabilities[candidate.index] = candidate.probability
        assert result["label"] == prediction.label, where
        assert result["probabilities"] == pytest.approx(probabilities, abs=TOLERANCE), where


# -- pictures -------------------------------------------------------------------------------


def _rgba(grey: np.ndarray, ink: tuple[int, ...] = (255,) * 3, sheet: tuple[int, ...] = (0,) * 3):
    """An opaque RGBA picture: ``grey`` 255 is the ink colour, 0 the sheet's."""
    t = grey.astype(np.float64)[..., None] / 255
    rgb = np.array(sheet) + (np.array(ink) - np.array(sheet)) * t
    alpha = np.full((*grey.shape, 1), 255.0)
    return np.concatenate([rgb, alpha], axis=-1).round().astype(np.uint8)


def _drawn(rng: np.random.Generator, width: int, height: int, line: int) -> np.ndarray:
    """Strokes and rings drawn with ImageDraw (hard-edged, as a paint program draws them)."""
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        points = [(rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height) for _ in "abc"]
        if rng.random() < 0.3:
            (x0, y0), (x1, y1) = points[:2]
            box = (min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)
            draw.ellipse(box, outline=255, width=line)
        else:
            draw.line(points, fill=255, width=line, joint="curve")
    return np.array(image)


def _pictures(digits: np.ndarray) -> list[np.ndarray]:
    """MNIST digits rescaled, inverted, coloured and see-through, and drawn digits of odd
    sizes and shapes (wide, tall, thin lines, half alpha), deterministically."""
    rng = np.random.default_rng(16)
    out = [_rgba(d) for d in digits[:24]]
    for i, d in enumerate(digits[24:40]):
        size = (int(rng.integers(9, 320)), int(rng.integers(9, 320)))
        scaled = np.array(Image.fromarray(d).resize(size, list(R)[i % 6]))
        out += [_rgba(scaled), _rgba(255 - scaled)]
    for d in digits[40:52]:
        colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in "ab"]
        if abs(sum(colours[0]) - sum(colours[1])) > 240:  # enough contrast not to be blank
            out.append(_rgba(d, *colours))
        see_through = np.zeros((*d.shape, 4), np.uint8)
        see_through[..., :3] = rng.integers(0, 256, 3)
        see_through[..., 3] = d if rng.random() < 0.5 else d // 2  # ink only, or half alpha
        out.append(see_through)
        half = _rgba(d)
        half[..., 3] = 128
        out.append(half)
    for width, height in [(37, 91), (301, 29), (15, 240), (233, 233), (64, 5), (4, 61), (99, 100)]:
        for line in (1, 3, max(1, min(width, height) // 6)):
            grey = _drawn(rng, width, height, line)
            picture = _rgba(grey if line % 2 else 255 - grey)  # light on dark, dark on light
            if line == 3:
                picture[..., 3] = 128  # half transparent
            out.append(picture)
    big = _drawn(rng, 1203, 871, 40)  # photo-sized: blue ink on white
    out.append(_rgba(big, (20, 30, 200), (255, 255, 255)))
    smooth = np.array(Image.fromarray(_drawn(rng, 360, 240, 24)).resize((120, 80), R.LANCZOS))
    out.append(_rgba(smooth))
    return out


# -- tests ----------------------------------------------------------------------------------


def test_ready_resolves_with_the_api(page: Any) -> None:
    kinds = page.execute_script(
        "return [typeof lenet5Demo.classify, typeof lenet5Demo.preprocess, "
        "lenet5Demo.ready instanceof Promise]"
    )
    assert kinds == ["function", "function", True]


def _draw(page: Any, strokes: list[list[tuple[int, int]]], *, lift: bool = True) -> None:
    """Mouse strokes on the pad, through points given in CSS pixels from its top left."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = page.find_element("css selector", "canvas.lenet5-demo__pad")
    half = pad.size["width"] // 2
    actions = ActionBuilder(page, mouse=PointerInput(interaction.POINTER_MOUSE, "m"), duration=0)
    for n, stroke in enumerate(strokes):
        for i, ((x0, y0), (x1, y1)) in enumerate(itertools.pairwise(stroke)):
            steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) // 8))
            for s in range(0 if i == 0 else 1, steps + 1):
                x, y = x0 + (x1 - x0) * s / steps, y0 + (y1 - y0) * s / steps
                actions.pointer_action.move_to(pad, int(x) - half, int(y) - half)
                if i == 0 and s == 0:
                    actions.pointer_action.pointer_down()
        if lift or n < len(strokes) - 1:
            actions.pointer_action.pointer_up()
    if lift and not strokes:  # lift the button left down by an earlier call
        actions.pointer_action.pointer_up()
    actions.perform()


def _settled(page: Any) -> dict[str, Any]:
    from selenium.webdriver.support.wait import WebDriverWait

    shown = WebDriverWait(page, 30, poll_frequency=0.05).until(
        lambda d: d.execute_script(SETTLED_JS)
    )
    assert isinstance(shown, dict)
    return shown


@pytest.mark.parametrize(
    ("digit", "strokes"),
    [
        ("1", [[(150, 45), (132, 235)]]),
        ("7", [[(75, 60), (205, 55), (120, 235)]]),
    ],
)
def test_drawing_updates_the_prediction(
    page: Any, predictor: Predictor, digit: str, strokes: list[list[tuple[int, int]]]
) -> None:
    page.find_element("css selector", "[data-action=clear]").click()
    assert _settled(page)["label"] == ""
    _draw(page, strokes, lift=False)
    during = _settled(page)  # the button is still down: predicted on pointermove already
    assert during["label"] != ""
    assert int(during["drawn"]) > 10
    _draw(page, [], lift=True)
    shown = _settled(page)
    assert shown["label"] == shown["shown"] == digit
    canvas = page.execute_script(CANVAS_JS)
    (again,) = page.execute_async_script(CLASSIFY_JS, [canvas])
    assert again["label"] == shown["label"]
    assert again["probabilities"] == pytest.approx(json.loads(shown["probabilities"]), abs=1e-12)
    rgba = np.frombuffer(base64.b64decode(canvas[0]), np.uint8).reshape(canvas[2], canvas[1], 4)
    _check_against_python(predictor, [rgba], [again])


def test_classify_matches_the_library(
    page: Any, predictor: Predictor, mnist_test: ImageSet
) -> None:
    pictures = _pictures(mnist_test.images[:52].numpy())
    results = _classify_in_page(page, pictures)
    _check_against_python(predictor, pictures, results)


def test_blank_and_oversized_pictures_are_refused(page: Any) -> None:
    white = _rgba(np.full((30, 40), 255, np.uint8))
    faint = _rgba(np.random.default_rng(0).integers(0, 25, (17, 23)).astype(np.uint8))
    clear = np.zeros((20, 20, 4), np.uint8)  # fully transparent
    results = _classify_in_page(page, [white, faint, clear])
    for picture, result in zip([white, faint, clear], results, strict=True):
        with pytest.raises(ImageError) as python:
            to_mnist(Image.fromarray(picture, "RGBA"))
        assert result == {"error": f"ImageError: {python.value}"}
        assert "the image is blank" in result["error"]
    huge = page.execute_async_script(
        "const done = arguments[0];"
        "lenet5Demo.classify(new Uint8ClampedArray(4), 4097, 4096).then("
        "  () => done('resolved'), (e) => done(e.name + ': ' + e.message));"
    )
    assert huge.startswith("RangeError: ")
    assert "4096 x 4096" in huge
