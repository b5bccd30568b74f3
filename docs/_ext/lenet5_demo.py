"""Sphinx extension for the "Draw a digit" page (docs/demo.rst): the model in the browser.

At build time (HTML builders only) it writes into the output's ``_static/demo/``:

* ``lenet5.onnx``: the bundled ``DEFAULT`` weights, exported with :func:`lenet5.export.export_onnx`
  (input ``input`` of shape ``(N, 1, 28, 28)``, output ``logits``);
* ``lenet5.json``: what the page must not hard-code: the weights' normalisation and class
  names, the ONNX names, and how the Pillow of this build orders its resize passes;
* ONNX Runtime Web, pinned and integrity-checked by ``scripts/fetch_onnxruntime_web.py``
  (downloaded once into a user cache, offline afterwards);
* the page's own scripts and style, from ``docs/_static/demo/``.

Nothing is written into the source tree. The scripts are added to the pages holding the
demo's markup (``id="lenet5-demo"``) only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, cast

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
SOURCES = DOCS / "_static" / "demo"
FETCH_SCRIPT = ROOT / "scripts" / "fetch_onnxruntime_web.py"
#: A local tarball to use instead of downloading (for offline machines).
TARBALL_ENV = "LENET5_ORT_WEB_TARBALL"
MARKER = 'id="lenet5-demo"'
logger = logging.getLogger(__name__)
#: The runtime's files in the output, by their cached names. The ES module is served as
#: ``.js``: static servers (Python's http.server among them) may not know ``.mjs``, and
#: browsers refuse a module served with another MIME type than JavaScript.
RUNTIME_FILES = {
    "ort.wasm.bundle.min.mjs": "ort.wasm.bundle.min.js",
    "ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm",
}


def _fetch_runtime() -> tuple[Path, str]:
    """The cached onnxruntime-web folder and its version, fetched on first use."""
    spec = importlib.util.spec_from_file_location("fetch_onnxruntime_web", FETCH_SCRIPT)
    if spec is None or spec.loader is None:
        raise ExtensionError(f"lenet5_demo: cannot load {FETCH_SCRIPT}")
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)
    tarball = os.environ.get(TARBALL_ENV) or None
    try:
        folder = fetcher.fetch(tarball=Path(tarball) if tarball else None)
    except fetcher.FetchError as exc:
        message = (
            f"lenet5_demo: cannot get onnxruntime-web {fetcher.VERSION} for the Draw a digit "
            f"page: {exc}. Fix: run `python scripts/fetch_onnxruntime_web.py` once with access "
            f"to the npm registry (it fills {fetcher.default_cache_dir()}; later builds are "
            f"offline), or set {TARBALL_ENV} to onnxruntime-web-{fetcher.VERSION}.tgz fetched "
            f"elsewhere with `npm pack onnxruntime-web@{fetcher.VERSION}`."
        )
        # Logged first, so that it stands at the top rather than inside Sphinx's crash report.
        logger.error(message)
        raise ExtensionError(message) from exc
    return Path(folder), str(fetcher.VERSION)


def _export_model(target: Path) -> dict[str, Any]:
    """Export the DEFAULT weights to ``target``; returns what the page needs to know."""
    from lenet5 import LeNet5
    from lenet5.export import ExportError, export_onnx

    model = LeNet5.from_pretrained("DEFAULT")
    weights = model.weights
    assert weights is not None  # from_pretrained always records them
    try:
        export_onnx(model, target)
    except ExportError as exc:
        raise ExtensionError(f"lenet5_demo: cannot export the model to ONNX: {exc}") from exc
    return {
        "weights": weights.name,
        "mean": weights.mean,
        "std": weights.std,
        "classes": list(weights.classes),
        "input": "input",
        "output": "logits",
    }


def _pillow_vertical_first() -> bool:
    """Whether this Pillow resizes vertically first when the height shrinks much more.

    Pillow 13 does (before, the horizontal pass always came first); the page's port of the
    LANCZOS resize follows whichever order ``lenet5.preprocess.to_mnist`` gets here. The
    two orders round differently on noise, so one resize tells them apart.
    """
    from PIL import Image

    noise = random.Random(0).randbytes(32 * 64)
    image = Image.frombytes("L", (32, 64), noise)
    lanczos = Image.Resampling.LANCZOS
    both = image.resize((4, 6), lanczos)
    vertical_first = image.resize((32, 6), lanczos).resize((4, 6), lanczos)
    horizontal_first = image.resize((4, 64), lanczos).resize((4, 6), lanczos)
    if both.tobytes() == vertical_first.tobytes() != horizontal_first.tobytes():
        return True
    if both.tobytes() == horizontal_first.tobytes():
        return False
    raise ExtensionError("lenet5_demo: this Pillow resizes in neither known order")


def build_assets(app: Sphinx) -> None:
    """Write the model, its description, the runtime and the page's files (HTML only)."""
    if app.builder.format != "html":
        return
    out = Path(app.outdir) / "_static" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    runtime, version = _fetch_runtime()
    for cached_name, served_name in RUNTIME_FILES.items():
        shutil.copyfile(runtime / cached_name, out / served_name)
    for source in sorted(SOURCES.iterdir()):
        if source.suffix in (".js", ".css"):
            shutil.copyfile(source, out / source.name)
    config = _export_model(out / "lenet5.onnx")
    config["pillowVerticalFirst"] = _pillow_vertical_first()
    config["onnxruntimeWeb"] = version
    config["runtime"] = RUNTIME_FILES["ort.wasm.bundle.min.mjs"]
    config["wasm"] = RUNTIME_FILES["ort-wasm-simd-threaded.wasm"]
    (out / "lenet5.json").write_text(json.dumps(config, indent=2) + "\n")


def add_page_assets(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Load the demo's script and style on the pages that hold its markup."""
    if MARKER in cast(str, context.get("body", "")):
        app.add_css_file("demo/demo.css")
        app.add_js_file("demo/demo.js", type="module")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the build step and the per-page assets."""
    app.connect("builder-inited", build_assets)
    app.connect("html-page-context", add_page_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
