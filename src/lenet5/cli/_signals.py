"""Signals, as a terminal and a cluster scheduler send them.

SIGINT (Ctrl-C), SIGTERM (what SLURM, Kubernetes and ``torchrun`` send before they kill)
and SIGUSR1 (what SLURM sends ahead of time with ``--signal``) all mean "stop". While
``lenet5 train`` trains, the first one asks the run to stop after the current batch (a
checkpoint is written and the command that resumes the run is printed) and the next one
aborts without saving (:func:`stop_on_signals`). At any other moment, one ends the command
at once with a one-line message (:func:`signals_end_the_command`). Either way the exit code
is 128 plus the signal's number: 130, 143 and 138 (:func:`exit_code`).

Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = [
    "STOP_SIGNALS",
    "Interrupted",
    "exit_code",
    "signal_name",
    "signal_of",
    "signals_end_the_command",
    "stop_on_signals",
    "stop_reason",
]

#: The signals that stop a command (SIGUSR1 where the platform has it).
STOP_SIGNALS: tuple[int, ...] = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name)
)

_Handler = Callable[[int, FrameType | None], Any] | int | None


def exit_code(signum: int) -> int:
    """The exit code of a command ended by ``signum``: 128 plus its number, as shells do."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    return signal.Signals(signum).name


def stop_reason(signum: int) -> str:
    """The stop reason that a run stopped by ``signum`` records (``state.stop_reason``)."""
    return f"interrupted ({signal_name(signum)})"


def signal_of(reason: str | None) -> int | None:
    """The signal whose :func:`stop_reason` ``reason`` is, or ``None`` (a callback's stop)."""
    return next((s for s in STOP_SIGNALS if stop_reason(s) == reason), None)


class Interrupted(KeyboardInterrupt):
    """A stop signal ended the command; the exit code is :func:`exit_code` of ``signum``.

    A :class:`KeyboardInterrupt`, so that whatever treats Ctrl-C as "stop now" treats
    SIGTERM and SIGUSR1 the same way.

    Attributes:
        signum: The signal.
        message: What to tell the user (one line).
    """

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = int(signum)
        self.message = message or f"interrupted by {signal_name(signum)}"
        super().__init__(self.message)


def _in_main_thread() -> bool:
    # Python runs signal handlers, and lets them be set, in the main thread only.
    return threading.current_thread() is threading.main_thread()


def _install(signums: tuple[int, ...], handler: _Handler) -> dict[int, _Handler]:
    return {s: signal.signal(s, handler) for s in signums}


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        # A handler set from C reads back as None: put the default back then.
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_end_the_command() -> Iterator[None]:
    """For the block: SIGTERM and SIGUSR1 raise :class:`Interrupted`, as Ctrl-C raises
    :class:`KeyboardInterrupt`, so that the command ends with its one-line message and
    its exit code instead of being killed silently. The previous handlers come back after.
    """
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    others = tuple(s for s in STOP_SIGNALS if s != signal.SIGINT)
    # An ignored signal (nohup, a job started in the background) stays ignored.
    wanted = tuple(s for s in others if signal.getsignal(s) is not signal.SIG_IGN)
    previous = _install(wanted, handler)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def stop_on_signals(trainer: Any, *, announce: bool) -> Iterator[None]:
    """For the block (a ``fit``): the first stop signal asks ``trainer``'s run to stop after
    the current batch, with :func:`stop_reason` as the reason; the next one aborts at once
    (:class:`Interrupted`), without saving.

    Under ``torchrun`` every process installs it: a stop asked for on any process stops
    all of them after the same batch (the trainer agrees on it), and rank 0 saves.

    Args:
        trainer: The :class:`~lenet5.Trainer` whose ``state`` is stopped.
        announce: Print what happens (rank 0 only, under ``torchrun``).
    """
    if not _in_main_thread():
        yield
        return
    asked: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        state = trainer.state
        if state is None or asked:
            _restore(previous)  # a further signal gets the command's own handling
            raise Interrupted(signum, f"aborted by {signal_name(signum)}, without saving")
        asked.append(signum)
        if announce:
            text = (
                "Stopping after this batch (Ctrl-C again to abort without saving)..."
                if signum == signal.SIGINT
                else f"{signal_name(signum)} received: stopping after this batch (a second "
                "signal aborts without saving)..."
            )
            print(f"\n{text}", file=sys.stderr, flush=True)
        state.stop(stop_reason(signum))

    previous = _install(STOP_SIGNALS, handler)
    try:
        yield
    finally:
        _restore(previous)
