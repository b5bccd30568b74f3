"""Exit codes, and the one place where exceptions become exit codes and one-line messages.

A command raises; :func:`run_command` decides: :class:`UsageError` (or a library error that
the command marked as one with :func:`usage_errors`) exits with 2, Ctrl-C with 130, any other
exception with 1; ``--debug`` lets the traceback through instead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "run_command",
    "usage_errors",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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


def run_command(
    command: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
) -> int:
    """Run one command and turn what it raises into an exit code and a one-line message."""
    name = f"lenet5 {args.command}"
    try:
        return command(args)
    except UsageError as exc:
        if args.debug:
            raise
        parser.exit(EXIT_USAGE, f"{name}: error: {exc}\n")
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        print(f"{name}: error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return EXIT_FAILURE
