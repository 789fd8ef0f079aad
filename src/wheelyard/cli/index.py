"""``wheelyard index``: write the flat, simple (PEP 503/691) and landing pages for a dist."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from wheelyard.index import make_index
from wheelyard.report import Reporter, human_size


def configure_parser(subparsers: Any, name: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="index a dist directory for pip and uv",
        description="Write <family>/index.html (find-links), <family>/simple/ (PEP 503 + PEP 691 "
        "JSON), .metadata sidecars (PEP 658) and a landing page for a build's dist directory.",
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
        "or the URL of a family's flat page or simple root); repeatable",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="public URL of the dist directory, used in the landing page's install commands",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    plan = make_index(
        dist=args.dist,
        manifest=args.manifest,
        merge_from=tuple(args.merge_from),
        base_url=args.base_url,
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
