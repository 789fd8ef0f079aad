"""``wheelyard build FAMILY...``: artifacts to wheels."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.build import DEFAULT_SOURCE_DATE_EPOCH, BuildOptions, build, summarize
from wheelyard.cli._options import add_profile_argument
from wheelyard.cli.version import add_release_arguments, release_spec
from wheelyard.errors import UsageError
from wheelyard.profile import default_artifacts
from wheelyard.report import Reporter
from wheelyard.wheelfile import DEFAULT_PRESET, PRESETS

# Run from the repository: its sample and packaging/rocm; installed: no default artifacts and
# the profile copy shipped inside the package (wheelyard.profile.location).
DEFAULT_ARTIFACTS = default_artifacts()


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
        help="directory of artifacts, as directories or .tar.xz/.tar.zst (required outside "
        "the wheelyard repository; default there: its samples/rocm-artifacts)",
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
        help="PEP 440 version of the set; overrides --release-type "
        "(default: profile base_version.dev0)",
    )
    add_release_arguments(parser, required=False)
    add_profile_argument(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel workers (default: number of cores)",
    )
    parser.add_argument(
        "--compression",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="fast (ISA-L 1: quickest, larger wheels), default (libdeflate 6: no larger than "
        "zlib 6, about twice as fast), small (libdeflate 9) or zlib (zlib 6, as before) "
        "(default: default)",
    )
    parser.add_argument(
        "--compression-level",
        type=int,
        help="a level of the --compression backend instead of its own; 0 stores "
        "(zlib 0-9, libdeflate 0-12, ISA-L 0-3)",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="start from an empty --out (default: keep the other families already there)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (every wheel, its files and size) and write nothing",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat every warning as an error (for CI and release builds)",
    )
    parser.add_argument(
        "--max-extract-size",
        metavar="SIZE",
        help="the most one artifact archive may expand to, in bytes or with a K, M, G or T "
        "suffix (powers of 1024) (default: the profile's [artifacts] max_extracted_gib)",
    )
    parser.set_defaults(execute=execute)


_SIZE_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(argument: str, text: str | None) -> int | None:
    """``512M``, ``40G`` or a plain byte count; None stays None."""
    if text is None:
        return None
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value.removesuffix(unit) if unit else value
    if not number.isdigit() or int(number) < 1:
        raise UsageError(argument, f"{text!r} is not a size", hint="pass for example 500M or 64G")
    return int(number) << _SIZE_UNITS[unit]


def source_date_epoch(environ: dict[str, str]) -> int:
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return DEFAULT_SOURCE_DATE_EPOCH
    try:
        return int(value)
    except ValueError:
        raise UsageError("SOURCE_DATE_EPOCH", f"{value!r} is not an integer") from None


def artifacts_argument(given: Path | None) -> Path:
    """``--artifacts``, or the repository's sample; a usage error outside the repository."""
    if given is not None:
        return given
    if DEFAULT_ARTIFACTS is None:
        raise UsageError(
            "--artifacts",
            "is required: there is no default outside the wheelyard repository",
            hint="pass --artifacts DIR, the directory of the artifacts to build from",
        )
    return DEFAULT_ARTIFACTS


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    options = BuildOptions(
        families=tuple(args.families),
        artifacts=artifacts_argument(args.artifacts),
        out=args.out,
        profile=args.profile,
        version=args.wheel_version,
        release=release_spec(args),
        jobs=args.jobs,
        compression=args.compression,
        compression_level=args.compression_level,
        source_date_epoch=source_date_epoch(dict(os.environ)),
        clean=args.clean,
        dry_run=args.dry_run,
        strict=args.strict,
        max_extract_size=parse_size("--max-extract-size", args.max_extract_size),
    )
    result = build(options, reporter=reporter)
    summarize(result, reporter)
    return 0
