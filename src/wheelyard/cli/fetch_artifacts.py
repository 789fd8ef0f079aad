"""``wheelyard fetch-artifacts``: a CI run's artifact archives from S3, ready for ``build``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.cli.upload import add_run_arguments, run_location
from wheelyard.report import Reporter, human_size
from wheelyard.upload import fetch_archives, list_run, make_client, plan_fetch


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="download a run's artifact archives for some families (plus generic)",
        description="Download {run_id}-{platform}/NAME_COMPONENT_FAMILY.tar.xz|.tar.zst (and "
        ".sha256sum) for the families and generic, concurrently, verified and resumable, into "
        "a directory that `wheelyard build --artifacts DIR` reads. See docs/upload.md.",
    )
    parser.add_argument(
        "--family",
        action="append",
        required=True,
        metavar="FAMILY",
        help="GPU family whose archives to fetch (repeatable or comma-separated)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/artifacts"),
        help="directory for the archives (default: build/artifacts)",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the run and print what would be fetched; download nothing",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    location, _ = run_location(args, os.environ)
    families = sorted({name for value in args.family for name in value.split(",") if name})
    client = make_client(
        endpoint_url=args.endpoint_url,
        max_attempts=args.max_attempts,
        pool=args.jobs * 2 + 2,
        anonymous=True,
    )
    plan = plan_fetch(
        list_run(client, location), location=location, families=families, out=args.out
    )
    source = location.uri(location.run_prefix)
    if args.dry_run:
        reporter.table(
            f"Would fetch from {source} (dry run)",
            ["key", "size", "family", "sha256sum"],
            [
                (a.key, human_size(a.size), a.family, "yes" if a.checksum_key else "no")
                for a in plan.archives
            ],
        )
        return 0
    with reporter.progress("fetch", plan.size) as bar:
        outcomes = fetch_archives(plan, client=client, jobs=args.jobs, on_bytes=bar.advance)
    reporter.table(
        f"Fetched from {source} into {args.out}",
        ["archive", "family", "size", "result"],
        [(a.name, a.family, human_size(a.size), outcomes[a.name]) for a in plan.archives],
    )
    reporter.line(f"next: wheelyard build {' '.join(families)} --artifacts {args.out}")
    return 0
