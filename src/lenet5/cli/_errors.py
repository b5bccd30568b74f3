"""Exit codes, and the one place where exceptions become exit codes and one-line messages.

A command raises; :func:`run_command` decides: :class:`UsageError` (or a library error that
the command marked as one with :func:`usage_errors`) exits with 2, a stop signal with 128
plus its number (Ctrl-C: 130), a closed output pipe quietly with 141, any other exception
with 1; ``--debug`` lets the traceback through instead. Warnings are the command's too
(:func:`warnings_in_our_voice`): ``lenet5 COMMAND: warning: ...``, one line each, each
text once, never Python's ``file:line`` format with a source line. Every message is one line that
names the file or folder concerned: lenet5's own errors do; an :class:`OSError` is told by
its file name, and any other exception by what the command was doing (:func:`doing`), so
that a message of torch's or zlib's never comes alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ._signals import exit_code, signal_name

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "describe",
    "doing",
    "interrupted",
    "run_command",
    "usage_errors",
    "warn_line",
    "warnings_in_our_voice",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: Ctrl-C (128 + SIGINT); SIGTERM gives 143 and SIGUSR1 138 (128 + the signal's number).
EXIT_INTERRUPTED = exit_code(signal.SIGINT)
#: The reader of the output went away (128 + SIGPIPE, as for other programs in a pipe).
EXIT_BROKEN_PIPE = 141

# Where doing() leaves its description on an exception that passes through it.
_DOING = "_lenet5_doing"
# The longest message printed (a message that long is somebody else's).
_MAX_MESSAGE = 600


class UsageError(Exception):
    """A command-line argument is wrong (exit code 2)."""


@contextlib.contextmanager
def usage_errors(*types: type[Exception]) -> Iterator[None]:
    """Treat these library exceptions, raised inside the block, as usage errors.

    The same exception can be the user's fault in one place (a setting given on the command
    line) and a real failure in another, so each command says where it is which.
    """
    try:
        yield
    except types as exc:
        raise UsageError(str(exc)) from exc


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Say what the block does (naming its file or folder) in the message of an exception
    that does not say it itself, e.g. ``doing(f"reading {path}")``. The innermost wins."""
    try:
        yield
    except Exception as exc:
        if not hasattr(exc, _DOING):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, _DOING, what)
        raise


def one_line(text: str) -> str:
    """``text`` on one line, cut to a readable length."""
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def describe(exc: BaseException) -> str:
    """The one-line message for ``exc``, naming the file when the exception does not."""
    ours = type(exc).__module__.startswith("lenet5")  # lenet5's errors name their file
    if isinstance(exc, OSError):
        message = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename is not None:
            where = str(exc.filename)
            if exc.filename2 is not None:
                where += f" -> {exc.filename2}"
            message = f"{where}: {message}"
        named = ours or exc.filename is not None
    else:
        message = str(exc) or type(exc).__name__
        if not ours:
            message = f"{type(exc).__name__}: {message}"
        named = ours
    doing_what = getattr(exc, _DOING, None)
    if doing_what and not named:
        message = f"{doing_what}: {message}"
    return one_line(message)


def warn_line(name: str, message: object) -> None:
    """Print one warning of command ``name`` (``lenet5 train``), on one line, to stderr."""
    print(f"{name}: warning: {one_line(str(message))}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_in_our_voice(name: str) -> Iterator[None]:
    """Show the warnings raised in the block as ``NAME: warning: MESSAGE``, one line each,
    once per cause (a warning's ``lenet5_cause`` attribute, else its text: the two splits
    of a data folder that differs from the official release say so in one line), never
    with Python's ``file:line`` and source line.

    Which warnings show is still Python's filters' choice (``-W``, ``PYTHONWARNINGS``).
    """
    seen: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = one_line(str(message))
        # A warning may name its cause (lenet5_cause): one line per cause, not per file.
        cause = str(getattr(message, "lenet5_cause", text))
        if cause not in seen:
            seen.add(cause)
            warn_line(name, text)

    with warnings.catch_warnings():
        shown: Any = show
        warnings.showwarning = shown
        yield


def interrupted(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The message and exit code of a command ended by Ctrl-C or another stop signal."""
    signum = getattr(exc, "signum", int(signal.SIGINT))
    message = getattr(exc, "message", None) or f"interrupted by {signal_name(signum)}"
    return message, exit_code(signum)


def _broken_pipe() -> int:
    """End quietly after the reader of the output went away (``lenet5 info | head -1``).

    Python's documented recipe: point standard output at ``os.devnull``, so that the
    flush at exit does not fail a second time.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def run_command(
    command: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
) -> int:
    """Run one command and turn what it raises into an exit code and a one-line message."""
    name = f"lenet5 {args.command}"
    try:
        with warnings_in_our_voice(name):
            code = command(args)
        sys.stdout.flush()  # here, so that a closed pipe is noticed here
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except UsageError as exc:
        if args.debug:
            raise
        parser.exit(EXIT_USAGE, f"{name}: error: {one_line(str(exc))}\n")
    except KeyboardInterrupt as exc:
        message, code = interrupted(exc)
        print(f"\n{name}: {message}", file=sys.stderr, flush=True)
        if args.debug:
            exc.lenet5_debug = True  # type: ignore[attr-defined]  # main() lets it through
            raise
        return code
    except Exception as exc:
        if args.debug:
            raise
        print(f"{name}: error: {describe(exc)}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
