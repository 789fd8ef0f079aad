"""``wheelyard upload``: an indexed dist tree to S3 (or a directory) under a CI run's prefix."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.errors import UsageError
from wheelyard.report import Reporter
from wheelyard.upload import (
    PLATFORMS,
    RELEASE_TYPES,
    BucketRules,
    Destination,
    GitHubRun,
    RunLocation,
    apply_upload,
    load_bucket_rules,
    open_backend,
    plan_upload,
    report_plan,
    report_upload,
    select_location,
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that place a run in a bucket; shared with ``fetch-artifacts``."""
    parser.add_argument("--run-id", help="the CI run's id (default: $GITHUB_RUN_ID)")
    parser.add_argument("--platform", choices=PLATFORMS, default="linux", help="default: linux")
    parser.add_argument(
        "--bucket", help="S3 bucket (default: chosen by the profile's [upload] rules)"
    )
    parser.add_argument(
        "--release-type",
        choices=RELEASE_TYPES,
        default="ci",
        help="which of the profile's buckets (default: ci)",
    )
    parser.add_argument(
        "--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS)"
    )
    add_profile_argument(parser)
    parser.add_argument(
        "--jobs", type=_positive, default=8, help="concurrent transfers (default: 8)"
    )
    parser.add_argument(
        "--max-attempts",
        type=_positive,
        default=8,
        help="attempts per request, with adaptive backoff (default: 8)",
    )


def run_location(
    args: argparse.Namespace, environ: Mapping[str, str], *, public_url: str | None = None
) -> tuple[RunLocation, BucketRules | None]:
    """Where the run is, from the arguments, the profile and the GitHub Actions environment."""
    github = GitHubRun.from_environment(environ)
    rules = load_bucket_rules(args.profile)
    run_id = args.run_id or github.run_id
    if not run_id:
        raise UsageError("--run-id", "required outside GitHub Actions (GITHUB_RUN_ID is unset)")
    location = select_location(
        rules=rules,
        run_id=run_id,
        platform=args.platform,
        fork=github.fork(rules.main_repository if rules else None),
        release_type=args.release_type,
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
        public_url=public_url,
    )
    return location, rules


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="upload an indexed dist to S3 (or a directory) under a run's prefix",
        description="Upload the dist tree as it stands (wheels, .metadata, index pages) to "
        "{owner-repo/ for forks}{run_id}-{platform}/python/ in S3, never replacing a package "
        "file, index pages last. See docs/upload.md.",
    )
    parser.add_argument(
        "--dist", type=Path, default=Path("build/dist"), help="dist directory (default: build/dist)"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="build manifest with sha256 and sizes (default: build-manifest.json beside --dist)",
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="FAMILY",
        help="family to upload (repeatable or comma-separated; default: every indexed family)",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--output-dir", type=Path, help="write the same keys below this directory instead of S3"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print every key, size and content type; send nothing, open no connection",
    )
    parser.add_argument(
        "--multipart-mib",
        type=_positive,
        default=64,
        help="files from this size (MiB) go in parts, concurrently (default: 64)",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    output_dir: Path | None = args.output_dir
    public_url = output_dir.resolve().as_uri() if output_dir else None
    location, rules = run_location(args, os.environ, public_url=public_url)
    groups = [name for value in args.group for name in value.split(",") if name]
    plan = plan_upload(dist=args.dist, location=location, groups=groups, manifest=args.manifest)
    target = (
        str(output_dir / location.python_prefix)
        if output_dir
        else location.uri(location.python_prefix)
    )
    if args.dry_run:
        report_plan(plan, reporter, target=target)
        return 0
    part = args.multipart_mib << 20
    destination = Destination(
        kind="directory" if output_dir else "s3",
        bucket=location.bucket,
        endpoint_url=args.endpoint_url,
        output_dir=output_dir,
        jobs=args.jobs,
        max_attempts=args.max_attempts,
        multipart_threshold=part,
        multipart_chunksize=max(part // 2, 8 << 20),
    )
    backend = open_backend(destination)
    try:
        result = apply_upload(plan, backend, reporter=reporter)
    finally:
        backend.close()
    requirement = rules.install_requirement if rules else "rocm"
    report_upload(result, reporter, target=target, requirement=requirement)
    return 0
