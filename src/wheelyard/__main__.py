"""Command-line entry point: ``wheelyard <command> ...`` or ``python -m wheelyard``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from wheelyard import __version__
from wheelyard.cli import COMMANDS
from wheelyard.errors import WheelyardError
from wheelyard.report import printable


def _add_verbosity(parser: argparse.ArgumentParser, *, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log every subprocess"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress lines"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wheelyard",
        description="Turn per-GPU-family SDK build artifacts into verified, indexed wheels.",
    )
    parser.add_argument("--version", action="version", version=f"wheelyard {__version__}")
    _add_verbosity(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in sorted(COMMANDS.items()):
        module.configure_parser(subparsers, name)
    for subparser in subparsers.choices.values():
        # SUPPRESS: a flag given before the subcommand is not reset by the subparser's default.
        _add_verbosity(subparser, default=argparse.SUPPRESS)
    return parser


def _os_error(error: OSError) -> str:
    reason = error.strerror or str(error)
    names = [name for name in (error.filename, error.filename2) if name is not None]
    where = " -> ".join(printable(str(name)) for name in names)
    return f"{where}: {reason}" if where else reason


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet cannot be combined")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.execute(args))
    except WheelyardError as error:
        print(f"error: {printable(str(error), keep_newlines=True)}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        # Disk full, permission denied, a path too long: the OS said no; not a bug of ours.
        print(f"error: {_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
