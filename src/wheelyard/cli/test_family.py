"""``wheelyard test``: install a family's wheels into a fresh environment and run rocm-sdk test."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.errors import UsageError
from wheelyard.profile import FamilyRegistry
from wheelyard.testing import (
    INSTALLERS,
    FamilyTestOptions,
    http_fetch,
    manifest_version,
    plan_test,
    run_test,
)
from wheelyard.upload import GitHubRun, load_bucket_rules, select_location

DEFAULT_DIST = "build/dist"
DEFAULT_MANIFEST = Path("build/build-manifest.json")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="install a family's wheels into a fresh environment and run `rocm-sdk test`",
        description="Install rocm[EXTRAS]==VERSION from --find-links only (no public index is "
        "consulted for our packages), then run `rocm-sdk test --junitxml FILE` within --timeout.",
    )
    parser.add_argument("family", help="GPU family, e.g. gfx94X-dcgpu")
    parser.add_argument(
        "--find-links",
        help=f"a dist directory or a family's flat page URL (default: {DEFAULT_DIST})",
    )
    parser.add_argument("--run-id", help="test the wheels a CI run uploaded (computes the URL)")
    parser.add_argument("--platform", choices=("linux", "windows"), default="linux")
    parser.add_argument("--bucket", help="with --run-id: the bucket (default: the profile's)")
    parser.add_argument(
        "--endpoint-url",
        help="with --run-id: an S3-compatible server; the URL is ENDPOINT/BUCKET/KEY",
    )
    parser.add_argument(
        "--version", help=f"version to install (default: {DEFAULT_MANIFEST}'s, if present)"
    )
    parser.add_argument("--extras", default="libraries,devel", help="default: libraries,devel")
    parser.add_argument("--installer", choices=sorted(INSTALLERS), default="pip")
    parser.add_argument("--deps-index", help="index for dependencies not in the find-links page")
    parser.add_argument("--pre", action="store_true", help="allow pre-release versions")
    parser.add_argument("--timeout", type=_seconds, default=1800.0, help="default: 1800 seconds")
    parser.add_argument("--venv", type=Path, help="environment (default: build/test-env/FAMILY)")
    parser.add_argument("--junitxml", type=Path, help="default: build/test-results/FAMILY.xml")
    add_profile_argument(parser)
    parser.set_defaults(execute=execute)


def _find_links(args: argparse.Namespace) -> str:
    if args.run_id is None:
        if args.endpoint_url is not None:
            raise UsageError(
                "--endpoint-url",
                "only applies with --run-id",
                hint="add --run-id ID [--bucket B], or pass the flat page's URL as --find-links",
            )
        return str(args.find_links or DEFAULT_DIST)
    if args.find_links is not None:
        raise UsageError("--run-id", "give either --run-id or --find-links, not both")
    rules = load_bucket_rules(args.profile)
    github = GitHubRun.from_environment(os.environ)
    location = select_location(
        rules=rules,
        run_id=args.run_id,
        platform=args.platform,
        fork=github.fork(rules.main_repository if rules else None),
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
    )
    return location.find_links_url(args.family)


def execute(args: argparse.Namespace) -> int:
    FamilyRegistry.load(args.profile / "families.toml").get(args.family)
    find_links = _find_links(args)
    version = args.version or manifest_version(DEFAULT_MANIFEST)
    extras = tuple(e.strip() for e in args.extras.split(",") if e.strip())
    options = FamilyTestOptions(
        family=args.family,
        find_links=find_links,
        version=version,
        extras=extras,
        installer=args.installer,
        deps_index=args.deps_index,
        pre=args.pre,
        timeout=args.timeout,
        venv=args.venv or Path("build/test-env") / f"{args.family}-{args.installer}",
        junitxml=args.junitxml or Path("build/test-results") / f"{args.family}.xml",
    )
    plan = plan_test(options, fetch=http_fetch)
    print(f"testing {plan.requirement} from {find_links} with {args.installer}", flush=True)
    run_test(plan)
    print(f"{args.family}: rocm-sdk test passed; results in {options.junitxml}")
    return 0
