"""Shared helpers of the command-line tests: run ``lenet5`` here or as a real process, check
its one-line errors, and a callback plugin that sends signals at a chosen step.

``run_main`` calls :func:`lenet5.cli.main` in the test process (a subprocess costs seconds
of imports); the hostile tests (signals, locks, full disks) need a real process:
:func:`start` and :func:`finish`, with :func:`train_args` for a tiny training on the
``data`` folder of ``tests/cli/conftest.py`` and :func:`signalled` for its signals.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lenet5.cli import main
from lenet5.training import ENTRY_POINT_GROUP

#: The small data folders' files are not the official ones: silence the MD5 warning.
NO_MD5_WARNING = ("-W", "ignore::UserWarning")

#: The ``run_cli`` fixture: ``python -m lenet5 ARGS`` in a subprocess.
Runner = Callable[..., subprocess.CompletedProcess[str]]

#: The line ``lenet5 train`` and ``lenet5 evaluate`` end with.
FINAL = re.compile(r"^Final \| Test Accuracy: (\d{1,3}\.\d{2})%$", re.MULTILINE)

#: Steps per epoch of a training on the ``data`` folder of tests/cli/conftest.py: 256 images
#: in batches of 32.
STEPS = 8

#: The name under which :data:`SIGNAL_PLUGIN` registers its callback.
SIGNAL_CALLBACK = "signal_at"

SIGNAL_PLUGIN = '''
"""A callback that sends signals to its own process at a chosen step (the test's hand).

LENET5_TEST_SIGNALS="SIGINT,SIGINT@11": at the end of global step 11 (rank 0 only), send
SIGINT, wait until the run asked to stop, then send the next one. LENET5_TEST_READY=FILE:
at that step, write FILE and wait until the run asks to stop (the test sends the signal).
"""

import os
import signal
import time
from pathlib import Path

from lenet5 import Callback


def _wait_for_stop(state, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not state.stop_requested and time.monotonic() < deadline:
        time.sleep(0.01)  # the signal handler runs here, in the main thread


class SignalAt(Callback):
    def __init__(self):
        names, _, step = os.environ["LENET5_TEST_SIGNALS"].partition("@")
        self.signals = [getattr(signal, name) for name in names.split(",") if name]
        self.step = int(step)
        self.ready = os.environ.get("LENET5_TEST_READY")

    def on_batch_end(self, state):
        if state.global_step != self.step or not state.is_main_process:
            return
        if self.ready:
            Path(self.ready).write_text(str(os.getpid()))
        for signum in self.signals:
            os.kill(os.getpid(), signum)
            _wait_for_stop(state, 30.0)
        if self.ready:
            _wait_for_stop(state)
'''


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


def one_line_error(stderr: str, command: str) -> str:
    """The one line that ``lenet5 COMMAND`` printed on standard error (no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"lenet5 {command}: "), lines[0]
    return lines[0]


def write_signal_plugin(site: Path) -> Path:
    """Install :data:`SIGNAL_PLUGIN` into ``site`` (a folder put on ``PYTHONPATH``), as pip
    would: the module and a ``.dist-info`` declaring the entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "lenet5_signal_plugin.py").write_text(textwrap.dedent(SIGNAL_PLUGIN))
    info = site / "lenet5_signal_plugin-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lenet5-signal-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{SIGNAL_CALLBACK} = lenet5_signal_plugin:SignalAt\n"
    )
    (info / "RECORD").write_text("")
    return site


def environment(pythonpath: Sequence[str | os.PathLike[str]] = (), **extra: str) -> dict[str, str]:
    """The environment of a ``lenet5`` process: one thread, unbuffered, no data folder from
    the environment (tests pass ``--data-dir``), no launcher's variables; ``pythonpath``
    before the inherited ``PYTHONPATH``, and ``extra`` variables."""
    env = dict(os.environ)
    for name in ("LENET5_DATA_DIR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        env.pop(name, None)
    env.pop("MASTER_PORT", None)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    paths = [str(p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def start(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] = (sys.executable, *NO_MD5_WARNING, "-m", "lenet5"),
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start ``lenet5 ARGS`` (or ``launcher ARGS``) as a real process, in its own session
    so that a signal meant for it reaches nothing else."""
    return subprocess.Popen(
        [*launcher, *map(str, args)],
        cwd=cwd,
        env=dict(env) if env is not None else environment(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for ``process`` (failing loudly after ``timeout`` seconds, killing it) and return
    ``(exit code, stdout, stderr)``."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running after {timeout} s:\n{out}\n{err}") from None
    return process.returncode, out or "", err


def final_accuracy(stdout: str) -> float:
    """The test accuracy of the :data:`FINAL` line (which must be there)."""
    match = FINAL.search(stdout)
    assert match, stdout
    return float(match.group(1))


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one error line of a finished ``lenet5`` process that exited with ``code``."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lenet5 ")
    assert "error:" in lines[0]
    return lines[0]


def train_args(data: Path, out: Path, *more: str | Path, epochs: int = 2) -> list[str | Path]:
    """``lenet5 train`` on the CPU, quiet, without validation, of ``epochs`` epochs."""
    return ["train", "--data-dir", data, "--epochs", str(epochs), "--device", "cpu",
            "--val-every", "0", "--quiet", "--out", out, *more]  # fmt: skip


def signalled(site: Path, spec: str, **extra: str) -> dict[str, str]:
    """The environment of a run whose plugin acts as ``spec`` says (see SIGNAL_PLUGIN)."""
    return environment([site], LENET5_TEST_SIGNALS=spec, **extra)


def names(folder: Path) -> list[str]:
    """The names in ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir())


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 300) -> None:
    """Wait until ``path`` exists, failing loudly if ``process`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"ended with {process.returncode}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s: {process.communicate()}")
        time.sleep(0.05)
