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
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "lenet5_layers",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
default_role = "code"

# -- autodoc / napoleon ------------------------------------------------------------------

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_default_options = {
    "show-inheritance": True,
}
autodoc_preserve_defaults = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections become fields of the class, not separate (possibly duplicate) entries.
napoleon_use_ivar = True
napoleon_use_rtype = False

# -- HTML --------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"lenet5 {release}"
html_static_path: list[str] = []
