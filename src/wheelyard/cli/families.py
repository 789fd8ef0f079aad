"""``wheelyard families``: the GPU families of a profile and the targets each covers."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from wheelyard.cli._options import add_profile_argument
from wheelyard.profile import load_profile
from wheelyard.report import Reporter


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="list GPU families and their targets",
        description="List the GPU families of a profile and the targets each covers. Every "
        "single target is also accepted as a family of its own.",
    )
    add_profile_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    families = profile.families.families
    reporter = Reporter.from_environment(os.environ, quiet=args.quiet)
    if args.json:
        document = {family.name: list(family.targets) for family in families}
        reporter.result(json.dumps(document, indent=2, sort_keys=True))
        return 0
    defaults = set(profile.default_families)
    rows = [
        (family.name, " ".join(family.targets), "yes" if family.name in defaults else "")
        for family in families
    ]
    reporter.table(f"GPU families ({profile.name})", ["family", "targets", "default"], rows)
    reporter.result(
        "single targets: " + " ".join(profile.families.all_targets()) + " (each a family too)"
    )
    return 0
