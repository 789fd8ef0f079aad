#!/usr/bin/env python3
"""Time wheelyard's index rendering on a large synthetic file list, next to dumb-pypi.

    python scripts/bench_index.py                       # 100,000 files in 5,000 projects
    python scripts/bench_index.py --projects 500 --versions 4 --keep out/

No wheels are needed: the script synthesizes a manifest (filename, sha256, size) and the
metadata an index takes from each wheel (Requires-Python, the METADATA sha256) as a mapping, and
feeds both to the same render and write functions `wheelyard index` uses. dumb-pypi gets the
same list, with the same facts, as its JSON-lines package list, in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from wheelyard.index.render import (
    IndexFile,
    LandingInfo,
    namespaces_from,
    parse_filename,
    plan_pages,
)
from wheelyard.index.write import IndexPlan, write_index
from wheelyard.proc import run
from wheelyard.report import Reporter

T = TypeVar("T")
NAMESPACE = "bench"


def synthesize(projects: int, versions: int) -> tuple[list[dict[str, object]], dict[str, str]]:
    """A manifest of ``projects * versions`` wheels and a filename -> METADATA-sha256 mapping."""
    manifest: list[dict[str, object]] = []
    metadata: dict[str, str] = {}
    for p in range(projects):
        for v in range(versions):
            filename = f"proj_{p:05d}-1.{v}.0-py3-none-any.whl"
            manifest.append(
                {
                    "path": f"dist/{NAMESPACE}/{filename}",
                    "sha256": hashlib.sha256(filename.encode()).hexdigest(),
                    "size": 1000 + 7 * p + v,
                }
            )
            metadata[filename] = hashlib.sha256(f"METADATA {filename}".encode()).hexdigest()
    return manifest, metadata


def index_files(manifest: list[dict[str, object]], metadata: Mapping[str, str]) -> list[IndexFile]:
    files = []
    for item in manifest:
        location = str(item["path"]).removeprefix("dist/")
        filename = location.rsplit("/", 1)[-1]
        project, version = parse_filename(filename)
        files.append(
            IndexFile(
                filename=filename,
                project=project,
                version=version,
                location=location,
                sha256=str(item["sha256"]),
                size=int(str(item["size"])),
                requires_python=">=3.9",
                metadata_sha256=metadata[filename],
            )
        )
    return files


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def bench_wheelyard(
    manifest: list[dict[str, object]], metadata: Mapping[str, str], out: Path
) -> dict[str, float]:
    files, prepare = timed(lambda: index_files(manifest, metadata))
    pages, render = timed(
        lambda: plan_pages(namespaces_from({NAMESPACE: files}), landing=LandingInfo())
    )
    plan = IndexPlan(dist=out, imports=(), sidecars=(), pages=tuple(pages), namespaces=())
    _changed, write = timed(lambda: write_index(plan))
    return {"prepare": prepare, "render": render, "write": write}


# Runs dumb-pypi's own main() and reports the process's peak RSS (VmHWM is per address space,
# so unlike ru_maxrss it does not inherit the parent's peak across fork and exec).
_MEASURED = """
import sys
from dumb_pypi.main import main
try:
    code = main(sys.argv[1:])
finally:
    peak = peak_rss_mib()
    print(f"peak-rss-mib={peak}")
sys.exit(code)
"""


def peak_rss_mib() -> int | None:
    """Peak resident memory of this process in MiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def require_dumb_pypi() -> None:
    if importlib.util.find_spec("dumb_pypi") is None:
        sys.exit("dumb-pypi is not installed: pip install dumb-pypi (dependency group 'bench')")


def bench_dumb_pypi(
    manifest: list[dict[str, object]], metadata: Mapping[str, str], work: Path, *, per_release: bool
) -> tuple[float, str]:
    package_list = work / "packages.jsonl"
    with open(package_list, "w", encoding="utf-8") as handle:
        for item in manifest:
            filename = str(item["path"]).rsplit("/", 1)[-1]
            line = {
                "filename": filename,
                "hash": f"sha256={item['sha256']}",
                "requires_python": ">=3.9",
                "core_metadata": f"sha256={metadata[filename]}",
            }
            handle.write(json.dumps(line) + "\n")
    out = work / ("dumb-pypi-full" if per_release else "dumb-pypi")
    measured = inspect.getsource(peak_rss_mib) + _MEASURED
    cmd = [
        sys.executable,
        "-c",
        measured,
        "--package-list-json",
        str(package_list),
        "--output-dir",
        str(out),
        "--packages-url",
        f"../../{NAMESPACE}/",
        "--no-generate-timestamp",
    ]
    if not per_release:
        cmd.append("--no-per-release-json")
    result, seconds = timed(lambda: run(cmd, timeout=3600))
    peaks = [line for line in result.stdout.splitlines() if line.startswith("peak-rss-mib=")]
    return seconds, peaks[-1].partition("=")[2] if peaks else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--versions", type=int, default=20, help="files per project")
    parser.add_argument("--keep", type=Path, help="write the outputs here instead of a temp dir")
    parser.add_argument("--skip-dumb-pypi", action="store_true")
    args = parser.parse_args()

    if not args.skip_dumb_pypi:
        require_dumb_pypi()
    manifest, metadata = synthesize(args.projects, args.versions)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[object, ...]] = []
    try:
        ours = bench_wheelyard(manifest, metadata, work / "wheelyard")
        rss = peak_rss_mib()
        count, size = tree_size(work / "wheelyard")
        total = sum(ours.values())
        rows.append(
            (
                "wheelyard (flat + simple HTML/JSON + landing)",
                f"{total:.2f}",
                f"parse {ours['prepare']:.2f} / render {ours['render']:.2f} / "
                f"write {ours['write']:.2f}",
                count,
                f"{size / 2**20:.1f}",
                f"{rss} MiB (includes the synthetic input)",
            )
        )
        if not args.skip_dumb_pypi:
            for per_release in (False, True):
                seconds, peak = bench_dumb_pypi(manifest, metadata, work, per_release=per_release)
                out = work / ("dumb-pypi-full" if per_release else "dumb-pypi")
                count, size = tree_size(out)
                label = "dumb-pypi" + ("" if per_release else " --no-per-release-json")
                row = (label, f"{seconds:.2f}", "one process", count, f"{size / 2**20:.1f}")
                rows.append((*row, f"{peak} MiB"))
        Reporter(stream=sys.stdout).table(
            f"Index of {len(manifest):,} files in {args.projects:,} projects",
            ["generator", "seconds", "breakdown", "files written", "MiB written", "peak RSS"],
            rows,
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
