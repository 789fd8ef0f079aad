"""``wheelyard index``: write the flat, simple (PEP 503/691) and landing pages for a dist."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.errors import UsageError
from wheelyard.index import FetchLimits, make_fetch, make_index
from wheelyard.profile import load_profile
from wheelyard.report import Reporter, human_size

_LIMITS = FetchLimits()


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="index a dist directory for pip and uv",
        description="Write <family>/index.html (find-links), <family>/simple/ (PEP 503 + PEP 691 "
        "JSON), .metadata sidecars (PEP 658) and a landing page for a build's dist directory. "
        "Nothing is written outside --dist, and nothing at all when a check fails.",
    )
    parser.add_argument(
        "--dist", type=Path, default=Path("build/dist"), help="dist directory (default: build/dist)"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="build manifest (default: build-manifest.json beside the dist directory, if any)",
    )
    parser.add_argument(
        "--merge-from",
        action="append",
        default=[],
        metavar="DIR|URL|FAMILY=URL",
        help="keep every file an existing index lists (a dist directory indexed by wheelyard, "
        "or the http(s) URL of a family's flat page or simple root); repeatable",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="public URL of the dist directory, used in the landing page's install commands",
    )
    add_profile_argument(parser, purpose=" whose families are the only ones indexed")
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=_LIMITS.timeout,
        metavar="SECONDS",
        help="most time one --merge-from response may take, connect to last byte "
        f"(default: {_LIMITS.timeout:g})",
    )
    parser.add_argument(
        "--fetch-max-bytes",
        type=int,
        default=_LIMITS.max_bytes,
        metavar="BYTES",
        help=f"largest --merge-from response accepted (default: {_LIMITS.max_bytes})",
    )
    parser.set_defaults(execute=execute)


def _limits(args: argparse.Namespace) -> FetchLimits:
    if not args.fetch_timeout > 0:
        raise UsageError("--fetch-timeout", f"{args.fetch_timeout} is not a positive number")
    if args.fetch_max_bytes <= 0:
        raise UsageError("--fetch-max-bytes", f"{args.fetch_max_bytes} is not positive")
    return FetchLimits(timeout=args.fetch_timeout, max_bytes=args.fetch_max_bytes)


def execute(args: argparse.Namespace) -> int:
    fetch = make_fetch(_limits(args))
    profile = load_profile(args.profile)
    plan = make_index(
        dist=args.dist,
        manifest=args.manifest,
        merge_from=tuple(args.merge_from),
        base_url=args.base_url,
        fetch=fetch,
        families=profile.families,
    )
    rows = [
        (
            ns.name,
            ns.projects,
            ns.files,
            ns.kept,
            human_size(ns.size),
            str(args.dist / ns.flat_page),
        )
        for ns in plan.namespaces
    ]
    reporter = Reporter.from_environment(os.environ)
    reporter.table("Index", ["family", "projects", "files", "kept", "size", "flat page"], rows)
    return 0
