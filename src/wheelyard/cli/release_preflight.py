"""``wheelyard release-preflight --tag vX.Y.Z``: is this tag fit to release?"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.release import (
    DEFAULT_API_URL,
    PreflightOptions,
    failures,
    preflight,
    report_checks,
)
from wheelyard.report import Reporter

DEFAULT_REPO = "ROCm/TheRock"


def configure_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name,
        help="check a release tag: exists, on the main branch, green CI",
        description="Check in the local git repository that --tag exists (of --tag-kind) and its "
        "commit is reachable from --main-branch, and through the GitHub REST API (token from "
        "GITHUB_TOKEN) that the commit has a successful run of --workflow.",
    )
    parser.add_argument("--tag", required=True, help="the release tag, e.g. v7.10.0")
    parser.add_argument(
        "--repo", default=DEFAULT_REPO, help=f"OWNER/NAME (default: {DEFAULT_REPO})"
    )
    parser.add_argument("--main-branch", default="main", help="default: main")
    parser.add_argument(
        "--git-dir", type=Path, default=Path(), help="default: the current directory"
    )
    parser.add_argument(
        "--tag-kind", choices=("annotated", "lightweight", "any"), default="annotated"
    )
    parser.add_argument("--api-url", default=DEFAULT_API_URL, help=f"default: {DEFAULT_API_URL}")
    parser.add_argument("--workflow", default="ci.yml", help="CI workflow file (default: ci.yml)")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    options = PreflightOptions(
        tag=args.tag,
        repo=args.repo,
        git_dir=args.git_dir,
        main_branch=args.main_branch,
        tag_kind=args.tag_kind,
        api_url=args.api_url,
        workflow=args.workflow,
    )
    checks = preflight(options, token=os.environ.get("GITHUB_TOKEN") or None)
    report_checks(reporter, f"release preflight: {args.tag}", checks)
    failed = failures(checks)
    if failed:
        reporter.result(f"preflight failed: {', '.join(c.name for c in failed)}")
        return 1
    reporter.result(f"preflight passed: {args.tag}")
    return 0
