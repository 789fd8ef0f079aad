"""``wheelyard publish``: upload a verified set to an index, or copy a run into a release bucket."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.errors import UsageError
from wheelyard.profile import load_profile
from wheelyard.release import BucketPromotion, promote_to_bucket, publish, release_prefix
from wheelyard.report import Reporter
from wheelyard.upload import PLATFORMS, load_bucket_rules, select_location


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
    parser.add_argument("--dist", type=Path, help="the set (generic + FAMILY/)")
    parser.add_argument(
        "--repository-url",
        help="upload endpoint, e.g. https://upload.pypi.org/legacy/",
    )
    parser.add_argument(
        "--index-url", help="its simple index (default: PyPI's or TestPyPI's, else URL/simple/)"
    )
    parser.add_argument(
        "--execute", dest="upload", action="store_true", help="upload (default: dry run)"
    )
    add_profile_argument(parser)
    bucket = parser.add_argument_group(
        "--to-bucket",
        "copy a tested run's set server-side into a release bucket prefix, never replacing a "
        "file, then re-index the prefix in merge mode (see docs/release.md)",
    )
    bucket.add_argument("--to-bucket", metavar="BUCKET", help="the release bucket")
    bucket.add_argument("--prefix", default="", help="key prefix in it (default: its root)")
    bucket.add_argument("--run-id", help="the tested CI run")
    bucket.add_argument("--platform", choices=PLATFORMS, default="linux")
    bucket.add_argument("--from-bucket", help="the run's bucket (default: the profile's CI bucket)")
    bucket.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
    bucket.add_argument(
        "--group", action="append", default=[], metavar="FAMILY",
        help="family to copy (repeatable or comma-separated; default: every family of the run)",
    )  # fmt: skip
    parser.set_defaults(execute=execute)


def _to_bucket(args: argparse.Namespace, reporter: Reporter) -> int:
    if not args.run_id:
        raise UsageError("--run-id", "required with --to-bucket")
    rules = load_bucket_rules(args.profile)
    if rules is None and not args.from_bucket:
        raise UsageError("--from-bucket", "required: the profile has no [upload] table")
    where = {"rules": rules, "run_id": args.run_id, "platform": args.platform, "fork": None}
    source = select_location(**where, bucket=args.from_bucket, endpoint_url=args.endpoint_url)
    target = select_location(**where, bucket=args.to_bucket, endpoint_url=args.endpoint_url)
    prefix = release_prefix(args.prefix)
    promotion = BucketPromotion(
        source_bucket=source.bucket,
        source_root=source.python_prefix,
        target_bucket=target.bucket,
        target_root=prefix,
        groups=tuple(sorted({g for value in args.group for g in value.split(",") if g})),
        base_url=target.url(prefix).rstrip("/"),
        endpoint_url=args.endpoint_url,
    )
    plan = promote_to_bucket(promotion, execute=args.upload)
    verb = "copied" if args.upload else "would copy"
    rows = [
        (item.relative, verb if item.action == "copy" else "skipped: same sha256",
         str(item.source.sha256)[:16])
        for item in plan.copies
    ]  # fmt: skip
    rows += [
        (page.path, ("written" if args.upload else "would write") if act == "write" else "same", "")
        for page, act in plan.pages
    ]
    reporter.table(f"publish to s3://{target.bucket}/{prefix}", ("key", "action", "sha256"), rows)
    copies = sum(item.action == "copy" for item in plan.copies)
    pages = sum(act == "write" for _, act in plan.pages)
    if args.upload:
        reporter.result(f"published: {copies} copied, {len(plan.copies) - copies} already there, "
                        f"{pages} pages written")  # fmt: skip
    else:
        reporter.result(f"dry run: {copies} would be copied, {pages} pages would be written; "
                        "pass --execute to copy")  # fmt: skip
    return 0


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    if args.to_bucket:
        return _to_bucket(args, reporter)
    for needed in ("dist", "repository_url"):
        if getattr(args, needed) is None:
            flag = "--" + needed.replace("_", "-")
            raise UsageError(flag, "required (or --to-bucket BUCKET --run-id ID)")
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
