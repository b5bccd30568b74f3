"""``python -m lenet5`` (lenet5/__main__.py): the same command line as ``lenet5``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import Runner, environment


def test_importing_dunder_main_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module = importlib.import_module("lenet5.__main__")
    assert module.__name__ == "lenet5.__main__"
    assert capsys.readouterr() == ("", "")  # no command ran, no usage was printed


# A meta-path finder that sends this process a real SIGINT when ``lenet5.cli`` starts to be
# imported: Ctrl-C at the moment ``python -m lenet5`` loads its command line.
_SIGINT_ON_IMPORT = """
import os, signal, sys

class _CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "lenet5.cli":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _CtrlC())
"""


def test_ctrl_c_while_the_command_line_is_imported_exits_130(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(_SIGINT_ON_IMPORT)
    process = subprocess.run(
        [sys.executable, "-m", "lenet5", "info"],
        env=environment([tmp_path]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 130, process.stderr
    assert process.stderr == "\nlenet5: interrupted by Ctrl-C\n"
    assert process.stdout == ""


def test_python_dash_m_equals_console_script(run_cli: Runner) -> None:
    script = Path(sys.executable).with_name("lenet5")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    direct = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    module = run_cli("--help")
    assert module.stdout == direct.stdout
