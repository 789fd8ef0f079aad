"""Local conveniences (``invoke --list``); CI and releases use the nox sessions instead."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from invoke import Collection, Context, Exit, task


def _wheelyard(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "wheelyard", *args], check=False)
    if result.returncode != 0:
        raise Exit(f"wheelyard {args[0]} failed (exit {result.returncode})", code=result.returncode)


@task(help={"out": "where to write the sample tree (default: samples/rocm-artifacts)"})
def sample(c: Context, out: str = "samples/rocm-artifacts") -> None:
    """Regenerate the bundled sample artifacts with the C compiler."""
    c.run(f"{sys.executable} scripts/make_sample_artifacts.py --out {out} --force")


@task(
    help={
        "families": "space-separated families (default: the profile's sample families)",
        "out": "output directory (default: build)",
    }
)
def pipeline(
    c: Context, families: str = "gfx94X-dcgpu gfx110X-all gfx120X-all", out: str = "build"
) -> None:
    """Build the sample families and index them, as CI does."""
    _wheelyard("build", *families.split(), "--out", out)
    _wheelyard("index", "--dist", str(Path(out) / "dist"))


@task(help={"dist": "directory to serve (default: build/dist)", "port": "port (default: 8000)"})
def serve(c: Context, dist: str = "build/dist", port: int = 8000) -> None:
    """Serve the index on 127.0.0.1: pip --find-links http://127.0.0.1:PORT/FAMILY/index.html."""
    if not Path(dist, "index.html").exists():
        raise Exit(f"{dist}/index.html is missing: run `invoke pipeline` first")
    c.run(f"{sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {dist}", pty=False)


@task(help={"out": "build directory to remove (default: build)"})
def clean(c: Context, out: str = "build") -> None:
    """Remove the build directory and nox environments."""
    for path in (Path(out), Path(".nox")):
        shutil.rmtree(path, ignore_errors=True)


ns = Collection(sample, pipeline, serve, clean)
