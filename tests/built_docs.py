"""The documentation built once per test session, shared by every test that reads it.

There is one ``sphinx-build -W`` of ``docs/`` per session. It starts in the background
when the session starts (:func:`start`, from an autouse fixture of tests/conftest.py) if a
selected test reads the docs, while the other tests run; the tests that read it wait for
it (:func:`wait`). The tests of the built pages, of the browser demo and of the examples
(tests/test_examples.py) read the same build:

* the gallery's examples run in it when a selected test reads what they did (the
  :data:`RUNS_FIXTURE` fixture): ``examples/_gallery.py`` then records each run (its
  flags, its ``--out`` folder, what it left in its working folder) in the build folder's
  ``gallery-runs/``; else the pages are built without running them
  (``LENET5_DOCS_RUN_EXAMPLES=0``);
* the build folder (laid out as :data:`LAYOUT`) is ``$LENET5_DOCS_BUILD`` when that is set
  (``scripts/check.sh`` sets ``docs/_build``, so that the HTML is in ``docs/_build/html``),
  else a folder beside pytest's base temporary folder, which all xdist workers share.

A file lock and a ``started`` file make the first worker start the build and the others
wait for its ``status`` file (Sphinx's exit code).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
#: Seconds the build may take: about five times what it takes, examples included, on a
#: loaded 2-core machine.
BUILD_TIMEOUT = 1800
#: The fixture of the tests that read what the gallery's examples did in the build.
RUNS_FIXTURE = "gallery_runs"
#: The fixtures of the tests that read the build.
READERS = frozenset({"docs_build", "built_docs", RUNS_FIXTURE})
#: The files of a build folder: the HTML, the examples' records, Sphinx's output, the
#: process that builds (``started``: its pid) and its exit code, written when it ends.
LAYOUT = {
    "html": "html",
    "doctrees": "doctrees",
    "runs": "gallery-runs",
    "log": "sphinx.log",
    "started": "started",
    "status": "status",
}


@dataclass(frozen=True)
class DocsBuild:
    """One finished build of the documentation."""

    #: The HTML folder (``index.html`` inside).
    html: Path
    #: ``examples/_gallery.py``'s record of each example's run (``NAME.json``, and its
    #: ``--out`` folder ``NAME/``); ``None`` when the examples did not run.
    runs: Path | None
    #: Sphinx's exit code and what it printed.
    returncode: int
    log: str

    def check(self) -> Path:
        """The HTML folder, or an AssertionError with Sphinx's output if the build failed."""
        assert self.returncode == 0, f"sphinx-build -W failed:\n{self.log}"
        return self.html


def folder(shared_tmp: Path) -> Path:
    """The session's build folder: ``$LENET5_DOCS_BUILD``, else one in ``shared_tmp``."""
    given = os.environ.get("LENET5_DOCS_BUILD")
    return Path(given).resolve() if given else shared_tmp / "docs"


def start(shared_tmp: Path, *, run_examples: bool, data: Mapping[str, Path] | None = None) -> None:
    """Start the build in the background, unless it is started or done already.

    Args:
        shared_tmp: A folder all workers of the session share (the parent of
            ``tmp_path_factory.getbasetemp()`` under xdist).
        run_examples: Whether the gallery's examples run in the build.
        data: The data folders the examples read, by environment variable
            (``LENET5_DATA_DIR``...: the folders the tests' fixtures use).
    """
    out = folder(shared_tmp)
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / "build.lock")):
        if (out / LAYOUT["started"]).exists() or (out / LAYOUT["status"]).exists():
            return
        env = {**os.environ, "LENET5_DOCS_RUN_EXAMPLES": "1" if run_examples else "0"}
        env.pop("LENET5_GALLERY_RUNS", None)
        env.update({name: str(path) for name, path in (data or {}).items()})
        # A fresh build: no page or warning of an earlier one is taken for this one's.
        for name in ("html", "doctrees", "runs", "log"):
            path = out / LAYOUT[name]
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        if run_examples:
            env["LENET5_GALLERY_RUNS"] = str(out / LAYOUT["runs"])
        sphinx = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        sphinx += ["-d", str(out / LAYOUT["doctrees"]), "docs", str(out / LAYOUT["html"])]
        log, status = (shlex.quote(str(out / LAYOUT[k])) for k in ("log", "status"))
        # The status file appears whole (a rename), once Sphinx has ended.
        script = (
            f"{shlex.join(sphinx)} >{log} 2>&1; echo $? >{status}.tmp; mv {status}.tmp {status}"
        )
        process = subprocess.Popen(["/bin/sh", "-c", script], cwd=REPO, env=env)
        (out / LAYOUT["started"]).write_text(f"{process.pid}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait(shared_tmp: Path, timeout: float = BUILD_TIMEOUT) -> DocsBuild:
    """The session's build, once it has ended (started by :func:`start`)."""
    out = folder(shared_tmp)
    status, started = out / LAYOUT["status"], out / LAYOUT["started"]
    begin = time.monotonic()
    while not status.exists():
        if not started.exists():
            raise AssertionError(f"no docs build was started in {out} (see tests/built_docs.py)")
        pid = int(started.read_text() or 0)
        if pid and not _alive(pid) and not status.exists():
            # A zombie counts as alive until its parent reaps it: only the parent's own
            # process can be dead without a status file.
            raise AssertionError(f"the docs build (process {pid}) ended without a status")
        if time.monotonic() - begin > timeout:
            raise AssertionError(f"the docs build in {out} did not end within {timeout:.0f} s")
        time.sleep(0.5)
    log = out / LAYOUT["log"]
    runs = out / LAYOUT["runs"]
    return DocsBuild(
        html=out / LAYOUT["html"],
        runs=runs if runs.is_dir() else None,
        returncode=int(status.read_text().strip()),
        log=log.read_text(encoding="utf-8", errors="replace") if log.exists() else "",
    )
