"""``wheelyard version --release-type ...``: print the version a build of that type gets."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.profile import (
    RELEASE_TYPES,
    ReleaseSpec,
    load_profile,
    release_version,
)


def add_release_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--release-type`` with ``--rc``, ``--date`` and ``--git-sha`` (shared with ``build``)."""
    parser.add_argument(
        "--release-type",
        choices=RELEASE_TYPES,
        required=required,
        help="release X.Y.Z, rc X.Y.ZrcN, nightly X.Y.ZaYYYYMMDD, dev X.Y.Z.dev0[+SHA]",
    )
    parser.add_argument("--rc", type=int, help="with --release-type rc: the candidate number")
    parser.add_argument(
        "--date", help="with --release-type nightly: YYYYMMDD (default: today, UTC)"
    )
    parser.add_argument("--git-sha", help="with --release-type dev: the commit, as a local version")


def release_spec(args: argparse.Namespace) -> ReleaseSpec | None:
    """The release spec of the parsed arguments, or None without ``--release-type``."""
    if args.release_type is None:
        return None
    when = args.date
    if args.release_type == "nightly" and when is None:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    return ReleaseSpec(release_type=args.release_type, rc=args.rc, date=when, git_sha=args.git_sha)


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="print the version of a release type",
        description="Print the PEP 440 version a build of --release-type gets, made from the "
        "profile's base_version.",
    )
    add_release_arguments(parser, required=True)
    add_profile_argument(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    spec = release_spec(args)
    assert spec is not None  # --release-type is required here
    print(release_version(load_profile(args.profile).base_version, spec))
    return 0
