"""Local conveniences (``invoke --list``); CI and releases use the nox sessions instead.

Every task runs wheelyard through the nox sessions, so it uses the project's own environment,
never whatever ``python`` happens to be on PATH.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

SAMPLE_FAMILIES = "gfx94X-dcgpu gfx110X-all gfx120X-all"


def _nox(c: Context, session: str, *args: str) -> None:
    """``nox -s SESSION -- ARGS``, reusing the session's environment; raise Exit on failure."""
    command = f"nox --reuse-existing-virtualenvs -s {session}"
    if args:
        command += " -- " + shlex.join(args)
    result = c.run(command, warn=True, pty=False)
    if result is None or result.exited != 0:
        code = 1 if result is None else result.exited
        raise Exit(f"nox session {session} failed (exit {code})", code=code)


@task(help={"out": "where to write the sample tree (default: samples/rocm-artifacts)"})
def sample(c: Context, out: str = "samples/rocm-artifacts") -> None:
    """Regenerate the bundled sample artifacts with the C compiler."""
    _nox(c, "sample", "--out", out, "--force")


@task(
    help={
        "families": f"space-separated families (default: {SAMPLE_FAMILIES})",
        "out": "output directory (default: build)",
    }
)
def build(c: Context, families: str = SAMPLE_FAMILIES, out: str = "build") -> None:
    """Build the sample families and index them, as CI does (no upload, no test)."""
    _nox(c, "build_wheels", *families.split(), "--out", out)
    _nox(c, "index", "--dist", str(Path(out) / "dist"))


@task(
    help={
        "families": "space-separated families (default: gfx94X-dcgpu)",
        "bucket": "upload to this S3 bucket instead of the build/bucket directory",
        "endpoint_url": "S3-compatible endpoint for --bucket, e.g. http://127.0.0.1:9000",
    }
)
def pipeline(
    c: Context, families: str = "gfx94X-dcgpu", bucket: str = "", endpoint_url: str = ""
) -> None:
    """Build, index, upload and test families on this machine (nox -s pipeline)."""
    args = families.split()
    if bucket:
        args += ["--bucket", bucket]
    if endpoint_url:
        args += ["--endpoint-url", endpoint_url]
    _nox(c, "pipeline", *args)


@task(
    help={
        "family": "GPU family whose wheels to test (default: gfx94X-dcgpu)",
        "find_links": "dist directory or flat page URL (default: build/dist)",
        "installer": "pip or uv (default: pip)",
    }
)
def verify(
    c: Context, family: str = "gfx94X-dcgpu", find_links: str = "build/dist", installer: str = "pip"
) -> None:
    """Install a family's wheels into a fresh venv and run rocm-sdk test (nox -s test-FAMILY)."""
    _nox(c, f"test-{family}", "--find-links", find_links, "--installer", installer)


@task(help={"dist": "directory to serve (default: build/dist)", "port": "port (default: 8000)"})
def serve(c: Context, dist: str = "build/dist", port: int = 8000) -> None:
    """Serve the index on 127.0.0.1: pip --find-links http://127.0.0.1:PORT/FAMILY/index.html."""
    if not Path(dist, "index.html").exists():
        raise Exit(f"{dist}/index.html is missing: run `invoke build` first")
    c.run(f"python -m http.server {port} --bind 127.0.0.1 --directory {shlex.quote(dist)}")


@task(help={"out": "build directory to remove (default: build)"})
def clean(c: Context, out: str = "build") -> None:
    """Remove the build directory and nox environments."""
    for path in (Path(out), Path(".nox")):
        shutil.rmtree(path, ignore_errors=True)


ns = Collection(sample, build, pipeline, verify, serve, clean)
