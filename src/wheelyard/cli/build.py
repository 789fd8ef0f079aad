"""``wheelyard build FAMILY...``: artifacts to wheels."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.build import DEFAULT_SOURCE_DATE_EPOCH, BuildOptions, build, summarize
from wheelyard.errors import UsageError
from wheelyard.report import Reporter

DEFAULT_ARTIFACTS = Path("samples/rocm-artifacts")
DEFAULT_PROFILE = Path("packaging/rocm")


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="split artifacts into wheels",
        description="Split per-family build artifacts into a deterministic set of wheels.",
    )
    parser.add_argument(
        "families",
        nargs="*",
        metavar="FAMILY",
        help="GPU families to build (default: the profile's default_families)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        help="directory of artifacts, as directories or .tar.xz/.tar.zst "
        f"(default: {DEFAULT_ARTIFACTS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build"),
        help="output directory; wheels go to OUT/dist (default: build)",
    )
    parser.add_argument(
        "--version",
        dest="wheel_version",
        help="PEP 440 version of the set (default: profile base_version.dev0)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=DEFAULT_PROFILE,
        help=f"profile directory (default: {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel workers (default: number of cores)",
    )
    parser.add_argument(
        "--compression-level", type=int, default=6, help="deflate level 0-9 (default: 6)"
    )
    parser.set_defaults(execute=execute)


def source_date_epoch(environ: dict[str, str]) -> int:
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return DEFAULT_SOURCE_DATE_EPOCH
    try:
        return int(value)
    except ValueError:
        raise UsageError("SOURCE_DATE_EPOCH", f"{value!r} is not an integer") from None


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ)
    options = BuildOptions(
        families=tuple(args.families),
        artifacts=args.artifacts,
        out=args.out,
        profile=args.profile,
        version=args.wheel_version,
        jobs=args.jobs,
        compression_level=args.compression_level,
        source_date_epoch=source_date_epoch(dict(os.environ)),
    )
    result = build(options, reporter=reporter)
    summarize(result, reporter)
    return 0
