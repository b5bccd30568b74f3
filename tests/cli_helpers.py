"""Running the command line in the test process (a subprocess costs seconds of imports)."""

from __future__ import annotations

import warnings
from pathlib import Path

from lenet5.cli import main


def run_main(*args: str | Path) -> int:
    """Run ``lenet5 ARGS`` here and return its exit code (usage errors exit via SystemExit).

    The MD5 warning of the small subset data folders is silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return main([str(a) for a in args])
        except SystemExit as exit:
            return int(exit.code or 0)
