"""Fail the HTML build when a built page shows an error or warning box.

Some problems do not stop Sphinx: a directive the theme refuses (Furo paints
``.. contents::`` as a red "ERROR" box), a docutils system message left in the page, a
``problematic`` reference. They end up in the HTML, where a reader sees them. After an HTML
build this extension reads every page and raises, naming each page and what it shows;
tests/test_docs_pages.py checks the same on a build of its own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: What an error or warning box looks like in the HTML: a docutils system message or
#: problematic reference Sphinx kept going past, or a table of contents, which Furo paints
#: red with an "ERROR: Adding a table of contents ... is unnecessary" banner (by CSS, on
#: ``.contents`` without its escape-hatch class).
BOX = re.compile(
    r'class="[^"]*\b(system-message|problematic)\b[^"]*"'
    r'|class="(?![^"]*this-will-duplicate-information)[^"]*\bcontents\b[^"]*"'
)


def boxes(html_dir: Path) -> dict[str, list[str]]:
    """Every page of ``html_dir`` that shows an error box, with a snippet of each box."""
    found: dict[str, list[str]] = {}
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        hits = [text[max(m.start() - 60, 0) : m.end() + 120] for m in BOX.finditer(text)]
        if hits:
            found[str(page.relative_to(html_dir))] = [" ".join(h.split()) for h in hits]
    return found


def _check(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    found = boxes(Path(app.outdir))
    if found:
        lines = [f"{page}: {snippets[0]}" for page, snippets in found.items()]
        raise ExtensionError(
            "built pages show error boxes (fix the source of each):\n" + "\n".join(lines)
        )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("build-finished", _check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
