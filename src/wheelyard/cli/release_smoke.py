"""``wheelyard release-smoke --dist DIR --expect-version V``: verify a set before publishing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.errors import UsageError
from wheelyard.release import SmokeOptions, failures, report_checks, smoke
from wheelyard.report import Reporter


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="verify every wheel of a release set, its completeness, and a test install",
        description="Per file: ZIP CRCs, PEP 427 name, one .dist-info, RECORD, METADATA, "
        "version, no dev/local, twine check --strict. Per family: the set is complete; then a "
        "fresh-environment install with --no-index and `rocm-sdk test`.",
    )
    parser.add_argument("--dist", type=Path, required=True, help="the set (generic + FAMILY/)")
    parser.add_argument("--expect-version", required=True, help="the version every file must have")
    parser.add_argument(
        "--families",
        nargs="+",
        default=[],
        metavar="FAMILY",
        help="families that must be complete (default: every FAMILY/ in --dist)",
    )
    parser.add_argument("--allow-dev", action="store_true", help="accept .dev and +local versions")
    parser.add_argument("--no-install", action="store_true", help="skip the install test")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    add_profile_argument(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    if not args.dist.is_dir():
        raise UsageError("--dist", f"{args.dist} is not a directory")
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    options = SmokeOptions(
        dist=args.dist,
        expect_version=args.expect_version,
        profile=args.profile,
        families=tuple(args.families),
        allow_dev=args.allow_dev,
        install=not args.no_install,
        jobs=args.jobs,
    )
    checks = smoke(options)
    report_checks(reporter, f"release smoke: {args.dist} ({args.expect_version})", checks)
    failed = failures(checks)
    if failed:
        reporter.result(f"release smoke failed: {len(failed)} of {len(checks)} checks")
        return 1
    reporter.result(f"release smoke passed: {len(checks)} checks")
    return 0
