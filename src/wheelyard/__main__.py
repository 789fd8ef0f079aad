"""Command-line entry point: ``wheelyard <command> ...`` or ``python -m wheelyard``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from wheelyard import __version__
from wheelyard.cli import COMMANDS
from wheelyard.errors import WheelyardError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wheelyard",
        description="Turn per-GPU-family SDK build artifacts into verified, indexed wheels.",
    )
    parser.add_argument("--version", action="version", version=f"wheelyard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every subprocess")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in sorted(COMMANDS.items()):
        module.configure_parser(subparsers, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.execute(args))
    except WheelyardError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
