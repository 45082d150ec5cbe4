"""The ``devicefit`` command line: thin subcommands over the library.

Each subcommand lives in ``cli/cmd_<name>.py`` and defines::

    NAME = "run"; HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def main(args: argparse.Namespace) -> int: ...

Subcommand modules import heavy libraries (torch, coremltools) inside ``main`` only, so ``devicefit --help``
stays instant. Errors derived from :class:`devicefit.errors.DevicefitError` print one line and exit 2;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from devicefit import __version__
from devicefit.errors import DevicefitError, printable

# Exit codes: 0 ok, 1 a check or gate failed, 2 bad input, 3 internal error, 130 interrupted.
INTERNAL_ERROR = 3


def _commands() -> list:
    pkg = importlib.import_module(__name__)
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 50))


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (exit 2) instead of the whole usage block before it: ``check
    --samples nan`` printed 15 lines of usage above its one line of reason."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="devicefit",
        description="Is this PyTorch model ready for Apple devices? Convert, run, validate, fit, compress "
        "and profile Core ML models on Linux or macOS.",
    )
    parser.add_argument("--version", action="version", version=f"devicefit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def cli_words(message: str, command: str) -> str:
    """``message`` in the command line's words: a library argument it names (``precision='fp32'``) becomes the
    flag of ``command`` that sets it (``--precision fp32``); names that are no flag of it are left as they are.

    Library errors speak the API's arguments; the same error printed by the CLI must speak its flags.
    """
    import re

    flags = _flags(command)

    def flag(match: re.Match[str]) -> str:
        option = "--" + match.group(1).replace("_", "-")
        return f"{option} {match.group(3)}" if option in flags else match.group(0)

    return re.sub(r"\b([a-z][a-z0-9_]*)=(['\"])([^'\"]*)\2", flag, message)


@functools.cache
def _flags(command: str) -> frozenset[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return frozenset(action.choices[command]._option_string_actions)
    return frozenset()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    from devicefit._malloc import tune_malloc

    tune_malloc()  # our own process: keep activation buffers mapped between runs (see _malloc.py)
    try:
        return int(args._main(args) or 0)
    except DevicefitError as e:
        if args.debug:
            raise
        # NOTE: printable(): a message quoting a file name with a newline or an escape sequence in it
        # must still be one line and must not drive the terminal.
        print(
            f"devicefit {args.command}: error: {printable(cli_words(str(e), args.command))}", file=sys.stderr
        )
        return e.exit_code
    except KeyboardInterrupt:
        print(f"devicefit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in devicefit or a library: one line, the traceback on request
        if args.debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(
            f"devicefit {args.command}: internal error: {type(e).__name__}: {printable(first)}; "
            "rerun with --debug for the traceback and please report it",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
