"""``wheelyard publish --dist DIR --repository-url URL [--execute]``: upload a verified set."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli.build import DEFAULT_PROFILE
from wheelyard.profile import load_profile
from wheelyard.release import publish
from wheelyard.report import Reporter


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="upload a set to a package index (a dry run unless --execute)",
        description="Read the index's simple page of every project first: files already there "
        "with the same sha256 are skipped, a different sha256 stops the run before any upload. "
        "Then `twine upload` the rest (credentials: TWINE_USERNAME/TWINE_PASSWORD, keyring, or "
        "Trusted Publishing) and confirm every file is listed with its sha256. Dev and local "
        "versions are refused.",
    )
    parser.add_argument("--dist", type=Path, required=True, help="the set (generic + FAMILY/)")
    parser.add_argument(
        "--repository-url",
        required=True,
        help="upload endpoint, e.g. https://upload.pypi.org/legacy/",
    )
    parser.add_argument(
        "--index-url", help="its simple index (default: PyPI's or TestPyPI's, else URL/simple/)"
    )
    parser.add_argument(
        "--execute", dest="upload", action="store_true", help="upload (default: dry run)"
    )
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    meta = load_profile(args.profile).meta
    planned = publish(
        args.dist,
        repository_url=args.repository_url,
        index_url=args.index_url,
        meta=meta,
        execute=args.upload,
    )
    done = {
        "upload": "uploaded" if args.upload else "would upload",
        "skip": "skipped: same sha256",
    }
    rows = [(p.path.name, done[p.action], p.sha256[:16]) for p in planned]
    reporter.table(f"publish to {args.repository_url}", ("file", "action", "sha256"), rows)
    uploads = sum(p.action == "upload" for p in planned)
    if args.upload:
        reporter.result(f"published: {uploads} uploaded, {len(planned) - uploads} already there")
    else:
        reporter.result(f"dry run: {uploads} would be uploaded; pass --execute to upload")
    return 0
