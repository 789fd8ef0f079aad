#!/usr/bin/env python3
"""Time ``wheelyard build`` (and optionally TheRock's packager) on a TheRock-format tree.

Each tool runs as a child process in its own scratch directory (its output, staging and
TMPDIR all below it). Measured per run: wall time, CPU (user + sys of the child and its
children, from ``os.wait4``), peak RSS (the largest process of the tree), bytes written
(``ru_oublock``: every page the run dirtied, including files it deleted later), the peak
disk use of its scratch directory (sampled every 0.2 s) and the bytes of the distributions
(``.whl`` and sdist ``.tar.gz``) it produced. Prints a Markdown table.

    python scripts/bench_real.py TREE [--families F ...] [--profile DIR] [--jobs N] [--runs N]
        [--therock DIR [--therock-python PY]]

TREE is a directory of ``{name}_{component}_{family}`` artifacts (``scripts/make_real_tree.py``
makes one from Debian's ROCm libraries). ``--therock`` is a checkout of ROCm/TheRock: its
``build_tools/build_python_packages.py`` runs with ``--therock-python`` (which needs setuptools
and wheel) and the ``patchelf`` found on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# TheRock's packager calls PurePath.relative_to(..., walk_up=True) and
# Path.exists(follow_symlinks=False), new in Python 3.12. For an older --therock-python this
# sitecustomize (put on its PYTHONPATH) adds both keywords; on 3.12 and later it does nothing.
PY312_SHIM = """\
import os, pathlib, sys
if sys.version_info < (3, 12):
    _relative_to = pathlib.PurePath.relative_to
    _exists = pathlib.Path.exists
    def relative_to(self, other, *rest, walk_up=False):
        if not walk_up:
            return _relative_to(self, other, *rest)
        return type(self)(os.path.relpath(self, pathlib.PurePath(other, *rest)))
    def exists(self, *, follow_symlinks=True):
        return _exists(self) if follow_symlinks else os.path.lexists(self)
    pathlib.PurePath.relative_to = relative_to
    pathlib.Path.exists = exists
"""


@dataclass(frozen=True, kw_only=True)
class Measure:
    wall: float  # seconds
    cpu: float  # user + sys seconds
    peak_rss: int  # bytes
    written: int  # bytes dirtied (ru_oublock * 512)
    peak_disk: int  # bytes, largest sampled size of the scratch directory
    dist_bytes: int  # bytes of the .whl and .tar.gz produced


def disk_usage(root: Path) -> int:
    """Allocated bytes of every file below ``root`` (files vanishing meanwhile are skipped)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(dirpath) / name).lstat().st_blocks * 512
            except OSError:
                continue
    return total


def dist_bytes(root: Path) -> int:
    found = [*root.rglob("*.whl"), *root.rglob("*.tar.gz")]
    return sum(p.stat().st_size for p in found if "dist" in p.relative_to(root).parts)


def run_measured(
    argv: list[str], *, scratch: Path, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Measure:
    """Run ``argv`` to completion; its TMPDIR is inside ``scratch``, which is sampled."""
    tmp = scratch / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {}), "TMPDIR": str(tmp)}
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], disk_usage(scratch))

    sampler = threading.Thread(target=sample, daemon=True)
    with log.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler.start()
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], disk_usage(scratch))
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"error: {' '.join(argv)} exited {child.returncode}; end of {log}:\n{tail}")
    return Measure(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=usage.ru_maxrss * 1024,
        written=usage.ru_oublock * 512,
        peak_disk=peak[0],
        dist_bytes=dist_bytes(scratch),
    )


def tree_families(tree: Path) -> list[str]:
    """The GPU families of the artifact directories in ``tree`` (not ``generic``)."""
    found = set()
    for entry in tree.iterdir():
        parts = entry.name.split("_")
        if entry.is_dir() and len(parts) == 3 and parts[2] != "generic":
            found.add(parts[2])
    return sorted(found)


def wheelyard_argv(args: argparse.Namespace, out: Path, families: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "wheelyard", "build", "--artifacts", str(args.tree)]
    argv += ["--out", str(out), "--jobs", str(args.jobs), "-q"]
    if args.profile is not None:
        argv += ["--profile", str(args.profile)]
    if args.compression is not None:
        argv += ["--compression", args.compression]
    return argv + families


def therock_argv(args: argparse.Namespace, dest: Path) -> list[str]:
    script = args.therock / "build_tools" / "build_python_packages.py"
    argv = [str(args.therock_python), str(script), "--artifact-dir", str(args.tree)]
    return argv + ["--dest-dir", str(dest), "--version", args.version]


def human(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "cpu":
        return f"{value:.1f} s"
    if value >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    if value >= 10 * 2**20 or unit == "MiB":
        return f"{value / 2**20:.1f} MiB"
    return f"{value / 2**10:.1f} KiB"


ROWS = (
    ("wall", "wall", "s"),
    ("CPU (user + sys)", "cpu", "cpu"),
    ("peak RSS", "peak_rss", "MiB"),
    ("written to disk", "written", "b"),
    ("peak disk use", "peak_disk", "b"),
    ("wheel bytes", "dist_bytes", "exact"),
)


def cell(runs: list[Measure], field: str, unit: str) -> str:
    values = [getattr(m, field) for m in runs]
    if unit == "exact":
        return " and ".join(f"{v:,} ({v / 1e6:.1f} MB)" for v in values)
    return " and ".join(human(v, unit) for v in values)


def table(results: dict[str, list[Measure]]) -> str:
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, field, unit in ROWS:
        lines.append(
            f"| {label} | " + " | ".join(cell(results[n], field, unit) for n in names) + " |"
        )
    if "TheRock" in results and "wheelyard" in results:
        base = min(m.wall for m in results["TheRock"])
        ups = [base / m.wall for m in results["wheelyard"]]
        lines.append(f"| speed-up (wall) | | {min(ups):.1f}x to {max(ups):.1f}x |")
        ratio = results["wheelyard"][-1].dist_bytes / max(1, results["TheRock"][-1].dist_bytes)
        lines.append(f"| wheel bytes vs TheRock | | {ratio:.4f} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("tree", type=Path, help="TheRock-format artifact directory")
    parser.add_argument("--families", nargs="+", help="default: every family in the tree")
    parser.add_argument("--profile", type=Path, help="wheelyard profile directory")
    parser.add_argument("--compression", help="wheelyard --compression (default: its own)")
    parser.add_argument("--therock", type=Path, help="a ROCm/TheRock checkout to compare with")
    parser.add_argument("--therock-python", type=Path, default=Path(sys.executable))
    parser.add_argument("--version", default="7.10.0.dev0", help="version TheRock stamps")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=1, help="wheelyard runs (TheRock runs once)")
    parser.add_argument("--scratch", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    args.tree = args.tree.resolve()
    if not args.tree.is_dir():
        parser.error(f"{args.tree} is not a directory")
    if args.therock is not None:
        if not (args.therock / "build_tools" / "build_python_packages.py").is_file():
            parser.error(f"--therock {args.therock}: no build_tools/build_python_packages.py")
        if shutil.which("patchelf") is None:
            parser.error("--therock needs patchelf on PATH (TheRock's packager runs it)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    families = args.families or tree_families(args.tree)
    load = os.getloadavg()
    print(f"tree {args.tree}, families {' '.join(families)}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    results: dict[str, list[Measure]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-real-", dir=args.scratch) as scratch_dir:
        scratch = Path(scratch_dir)
        if args.therock is not None:
            where = scratch / "therock"
            argv = therock_argv(args, where / "dest")
            print("$ " + " ".join(argv), flush=True)
            log = scratch / "therock.log"
            shim = scratch / "shim"
            shim.mkdir()
            (shim / "sitecustomize.py").write_text(PY312_SHIM)
            env = {"PYTHONPATH": str(shim)}
            measured = run_measured(argv, scratch=where, cwd=args.therock, log=log, env=env)
            results["TheRock"] = [measured]
            shutil.rmtree(where)
        results["wheelyard"] = []
        for run in range(args.runs):
            where = scratch / f"wheelyard-{run}"
            argv = wheelyard_argv(args, where / "out", families)
            print("$ " + " ".join(argv), flush=True)
            log = scratch / f"wheelyard-{run}.log"
            results["wheelyard"].append(run_measured(argv, scratch=where, cwd=REPO, log=log))
            shutil.rmtree(where)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
