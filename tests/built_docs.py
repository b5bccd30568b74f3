"""The documentation built once per test session, shared by the xdist workers.

The first worker that asks builds the HTML with ``sphinx-build -W`` into a folder beside
pytest's base temporary folder (the one all workers share) under a file lock; the others
wait for it and read the same pages. The gallery's examples are not executed here
(``LENET5_DOCS_RUN_EXAMPLES=0``): the whole docs build of ``scripts/check.sh`` runs them,
and tests/test_examples.py runs each script as a user does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
#: Seconds the build may take: about five times what it takes on a loaded 2-core machine.
BUILD_TIMEOUT = 600


def build_docs(shared_tmp: Path) -> Path:
    """The built HTML folder (``index.html`` inside), built on first use.

    Args:
        shared_tmp: A folder all workers of the session share (the parent of
            ``tmp_path_factory.getbasetemp()`` under xdist).

    Raises:
        AssertionError: With Sphinx's output, if the build fails.
    """
    out = shared_tmp / "docs-html"
    with FileLock(str(shared_tmp / "docs-html.lock")):
        done = out / ".built"
        if done.exists():
            return out
        env = {**os.environ, "LENET5_DOCS_RUN_EXAMPLES": "0"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sphinx",
                "-W",
                "--keep-going",
                "-q",
                "-b",
                "html",
                "-d",
                str(shared_tmp / "docs-doctrees"),
                "docs",
                str(out),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
        done.write_text("ok\n")
    return out
