"""The ``lenet5`` command line: ``train``, ``evaluate``, ``predict``, ``export``, ``info``.

Each command lives in its own module and registers its parser here; ``train``'s training
flags are generated from :class:`~lenet5.TrainConfig`. Building the parser and checking the
arguments import no torch, so ``--help`` and usage errors answer at once. Exceptions become
exit codes in one place (:mod:`lenet5.cli._errors`): usage errors exit with code 2, runtime
failures with 1, a stop signal with 128 plus its number (Ctrl-C: 130, SIGTERM: 143, SIGUSR1:
138; :mod:`lenet5.cli._signals`), a closed output pipe quietly with 141, and ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._hints import did_you_mean, publish
from .._version import __version__
from . import _evaluate, _export, _info, _predict, _train
from ._config_flags import config_from_args
from ._errors import UsageError, interrupted, run_command
from ._parser import CommandParser, RootParser
from ._signals import signals_end_the_command

__all__ = ["UsageError", "build_parser", "config_from_args", "main"]

# Kept for code that imported the helper under its old private name.
_config_from_args = config_from_args

# The commands, in the order ``lenet5 --help`` lists them.
_COMMANDS = (_train, _evaluate, _predict, _export, _info)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lenet5``, with every sub-command."""
    parser = RootParser(prog="lenet5", description="Train, evaluate and use LeNet-5 on MNIST.")
    parser.add_argument("--version", action="version", version=f"lenet5 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # --debug also works after the command (lenet5 train --debug ...).
    common = RootParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    commands.required = True
    for command in _COMMANDS:
        command.register(commands, [common])
    for command_parser in commands.choices.values():
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits itself on ``--help``).

    SIGTERM and SIGUSR1 end the command like Ctrl-C, with a one-line message and 128 plus
    the signal's number as the exit code; ``lenet5 train`` saves its run first.
    """
    with signals_end_the_command():
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:  # before the command started
            if getattr(exc, "lenet5_debug", False):
                raise  # --debug: the command said what happened; now the traceback
            message, code = interrupted(exc)
            print(f"\nlenet5: {message}", file=sys.stderr, flush=True)
            return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a seed study passes it on
    if unknown:
        # Reported by the command's parser, as one line like its other usage errors; flags
        # are never abbreviated, so a near miss gets a hint.
        command: argparse.ArgumentParser = args.command_parser
        flags = [s for a in command._actions for s in a.option_strings]
        first = unknown[0].partition("=")[0]
        hint = did_you_mean(first, flags) if first.startswith("--") else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return run_command(args.func, args, parser)


publish(__name__, globals())
