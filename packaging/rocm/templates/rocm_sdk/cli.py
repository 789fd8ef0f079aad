"""The ``rocm-sdk`` command: version, targets, path, init, test (TheRock's commands and flags)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from rocm_sdk import _info


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``rocm-sdk`` with ``argv`` (default: the process arguments); the exit status."""
    parser = _parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        if args.version:
            return _version(args)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.handler(args))
    except _info.RocmSdkError as exc:
        where = f"rocm-sdk {args.command}" if args.command else "rocm-sdk"
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rocm-sdk",
        description="ROCm SDK for Python: inspect, initialize and test the installed wheels.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the ROCm version and exit (as 'version')"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    version = commands.add_parser("version", help="print the ROCm version of the installed wheels")
    version.set_defaults(handler=_version)

    targets = commands.add_parser(
        "targets", help="print the GPU targets this family supports, separated by ';'"
    )
    targets.set_defaults(handler=_targets)

    path = commands.add_parser(
        "path", help="print a directory of the devel tree (expanding it first if needed)"
    )
    which = path.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--root",
        dest="which",
        action="store_const",
        const="root",
        help="the root of the devel tree (use as ROCM_HOME / ROCM_PATH)",
    )
    which.add_argument(
        "--bin",
        dest="which",
        action="store_const",
        const="bin",
        help="its program directory (to put on PATH)",
    )
    which.add_argument(
        "--cmake",
        dest="which",
        action="store_const",
        const="cmake",
        help="its CMake package directory (use as CMAKE_PREFIX_PATH)",
    )
    path.set_defaults(handler=_path)

    init = commands.add_parser(
        "init", help="expand the devel files (rocm[devel]) into place; a no-op when done"
    )
    init.add_argument("--quiet", action="store_true", help="print nothing unless it fails")
    init.set_defaults(handler=_init)

    test = commands.add_parser("test", help="check that the installed wheels work")
    test.add_argument("--junitxml", metavar="FILE", help="also write the results as JUnit XML")
    test.set_defaults(handler=_test)
    return parser


def _version(args: argparse.Namespace) -> int:
    print(_info.load().version)
    return 0


def _targets(args: argparse.Namespace) -> int:
    print(";".join(_info.load().targets))
    return 0


def _path(args: argparse.Namespace) -> int:
    from rocm_sdk import _devel

    paths = _devel.locate(_info.load())
    _devel.ensure_initialized(paths, log=_to_stderr)
    choices = {"root": paths.root, "bin": paths.bin_dir, "cmake": paths.cmake_dir}
    print(choices[args.which])
    return 0


def _init(args: argparse.Namespace) -> int:
    from rocm_sdk import _devel

    log: Callable[[str], None] = _quiet if args.quiet else print
    paths = _devel.locate(_info.load())
    if not _devel.ensure_initialized(paths, log=log, warn=_to_stderr):
        log(f"rocm-sdk init: already initialized: {paths.root}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from rocm_sdk import _selftest

    return _selftest.run(junitxml=args.junitxml)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _quiet(message: str) -> None:
    return None
