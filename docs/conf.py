"""Sphinx configuration for the lenet5 documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are
errors). Nothing here reaches the network: intersphinx is deliberately not enabled.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Document the source tree even when the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
# The project's own extensions (the layers picture of the Architecture page).
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import lenet5

# -- Project -----------------------------------------------------------------------------

project = "lenet5"
author = "lenet5 developers"
copyright = "lenet5 developers"
version = lenet5.__version__
release = lenet5.__version__

# -- General -----------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    # CHANGELOG.md is Markdown; the Changelog page includes it through MyST.
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "lenet5_layers",
    "lenet5_zoo",
    "lenet5_demo",
    "lenet5_pagecheck",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "gallery/*.ipynb", "gallery/*.py"]
nitpicky = False
default_role = "code"
# Blocks without a language are text (output, trees, diagrams), not Python.
highlight_language = "text"
# The Changelog page is the one Markdown file; the docs' own pages are reST.
source_suffix = {".rst": "restructuredtext"}
# The Changelog page's title is its reST heading; the included Markdown starts at "##".
suppress_warnings = ["myst.header"]

# -- autodoc / napoleon ------------------------------------------------------------------

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_default_options = {
    "show-inheritance": True,
}
autodoc_preserve_defaults = True
# The API index lists the modules with their summaries; their pages are written by hand.
autosummary_generate = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections become fields of the class, not separate (possibly duplicate) entries.
napoleon_use_ivar = True
napoleon_use_rtype = False

# -- HTML --------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"lenet5 {release}"
html_static_path = ["_static"]
html_css_files = ["css/lenet5.css"]

# -- Gallery (sphinx-gallery) ------------------------------------------------------------
# examples/ becomes the gallery, docs/gallery/ (generated, not in git): a page per script,
# with what it prints and the figures it draws. sphinx-gallery runs every script during the
# build, in this process, with the flags of examples/_gallery.py (a short run on a few
# hundred images; --out in a temporary folder, so nothing is written into the source tree),
# and a script that fails fails the build. LENET5_DOCS_RUN_EXAMPLES=0 builds the pages
# without running them. With LENET5_GALLERY_RUNS set (scripts/check.sh, tests/built_docs.py),
# every script runs even when its page is up to date, and examples/_gallery.py records each
# run there for tests/test_examples.py: this build is the one run of the examples per check.
import os  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(_REPO / "examples"))  # examples/_gallery.py, named below

# The scripts read the MNIST files from LENET5_DATA_DIR, and each runs in its own folder
# (sphinx-gallery changes into it): a relative path, as CI sets (../shared/data/mnist), is
# made absolute here, against the folder sphinx-build started in, else the repository root.
if os.environ.get("LENET5_DATA_DIR"):
    _data = Path(os.environ["LENET5_DATA_DIR"]).expanduser()
    if not _data.is_absolute():
        _data = next((p for p in (Path.cwd() / _data, _REPO / _data) if p.is_dir()), _data)
    os.environ["LENET5_DATA_DIR"] = str(_data.resolve())

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "gallery",
    "subsection_order": ["../examples/inference", "../examples/research"],
    # Callables are named by import path (Sphinx caches the configuration by pickling it).
    "within_subsection_order": "_gallery.order",
    "reset_argv": "_gallery.reset_argv",
    "filename_pattern": r"\.py$",  # run every example ...
    "ignore_pattern": r"^_",  # ... but not the helper examples/_gallery.py
    "plot_gallery": os.environ.get("LENET5_DOCS_RUN_EXAMPLES", "1") != "0",
    "run_stale_examples": bool(os.environ.get("LENET5_GALLERY_RUNS")),
    # matplotlib's state reset before each script; _gallery.record after each.
    "reset_modules": ("matplotlib", "_gallery.record"),
    "reset_modules_order": "both",
    "image_scrapers": ("matplotlib",),
    "only_warn_on_example_error": False,  # a failing example fails the build
    "abort_on_example_error": False,  # after running the others, to report them all
    "remove_config_comments": True,
    "capture_repr": (),  # the pages show what the scripts print, not stray return values
    "show_memory": False,
    # No execution-time pages: a table of seconds is not documentation.
    "write_computation_times": False,
    "show_signature": False,
    "download_all_examples": False,
    # No notebooks: the scripts read their flags with argparse, which a notebook cannot.
    "notebook_extensions": set(),
    "min_reported_time": 1,
}
