"""``wheelyard promote --dist DIR --to-version V --out DIR``: rc/alpha to final or ``.postN``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.release import SmokeOptions, failures, promote, report_checks, smoke
from wheelyard.report import Reporter


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="rewrite a built set to its final (or .postN) version, then verify it",
        description="Rewrite every wheel of --dist to --to-version (filenames, dist-info and "
        ".data names, METADATA, the meta's pins, the runtime's embedded version, RECORD) into "
        "--out, then run the release smoke checks on the result.",
    )
    parser.add_argument("--dist", type=Path, required=True, help="the built set")
    parser.add_argument("--to-version", required=True, help="X.Y.Z or X.Y.Z.postN")
    parser.add_argument("--out", type=Path, required=True, help="a new or empty directory")
    parser.add_argument("--no-verify", action="store_true", help="skip the smoke checks")
    parser.add_argument("--no-install", action="store_true", help="smoke without the install")
    add_profile_argument(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    promotion = promote(args.dist, args.to_version, args.out)
    reporter.line(f"promoted {len(promotion.files)} wheels {promotion.old} -> {promotion.new}")
    if not args.no_verify:
        options = SmokeOptions(
            dist=args.out,
            expect_version=promotion.new,
            profile=args.profile,
            install=not args.no_install,
        )
        checks = smoke(options)
        failed = failures(checks)
        report_checks(reporter, f"release smoke: {args.out} ({promotion.new})", failed or checks)
        if failed:
            reporter.result(f"promoted set failed {len(failed)} checks: {args.out}")
            return 1
    reporter.result(f"wrote {len(promotion.files)} wheels of {promotion.new} to {args.out}")
    return 0
