"""Sessions: the front door of wheelyard. Each installs the project and runs one command."""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
LINTED = ["src", "packaging/rocm/templates", "tests", "scripts", "noxfile.py", "tasks.py"]


def _install(session: nox.Session, *groups: str) -> None:
    if session.venv_backend == "none":
        session.log("--no-venv: using the current environment as it is")
        return
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".", *deps)


def _wheelyard(session: nox.Session, *args: str) -> None:
    """Run ``wheelyard`` and exit with its exit code (nox alone would turn every failure into 1)."""
    try:
        session.run("wheelyard", *args)
    except nox.command.CommandFailed as failed:
        if failed.return_code not in (None, 0, 1):
            session.log(f"wheelyard exited with code {failed.return_code}")
            raise SystemExit(failed.return_code) from None
        raise


@nox.session
def build_wheels(session: nox.Session) -> None:
    """Split artifacts into wheels: FAMILY... [--artifacts DIR] [--out DIR] [--version V]."""
    _install(session)
    _wheelyard(session, "build", *session.posargs)


@nox.session
def index(session: nox.Session) -> None:
    """Write pip/uv indexes for build/dist: [--dist DIR] [--merge-from DIR-or-URL]."""
    _install(session)
    _wheelyard(session, "index", *session.posargs)


@nox.session(default=False)
def upload(session: nox.Session) -> None:
    """Upload build/dist to S3 or a directory: --run-id ID [--group F] [--output-dir DIR]."""
    _install(session)
    _wheelyard(session, "upload", *session.posargs)


@nox.session(default=False)
def fetch_artifacts(session: nox.Session) -> None:
    """Download a run's artifact archives: --run-id ID --family F [--out DIR]."""
    _install(session)
    _wheelyard(session, "fetch-artifacts", *session.posargs)


@nox.session
def families(session: nox.Session) -> None:
    """List the profile's GPU families and their targets."""
    _install(session)
    _wheelyard(session, "families", *session.posargs)


@nox.session(default=False)
def sample(session: nox.Session) -> None:
    """Regenerate the bundled sample artifacts with the C compiler: --out DIR --force."""
    session.run("python", "scripts/make_sample_artifacts.py", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest arguments pass through)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the library, the runtime template, scripts and tests."""
    _install(session, "lint")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")
    # The runtime template: mypy checks it as Python 3.10 (the oldest it can still target);
    # tests/integration/test_oldest_python.py runs it on the oldest Python the wheels declare.
    session.run(
        "mypy",
        "--strict",
        "--python-version",
        "3.10",
        "--no-namespace-packages",
        "packaging/rocm/templates/rocm_sdk",
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (build, index, upload); figures go to docs/benchmarks.md by hand."""
    _install(session, "bench")
    session.run("python", "scripts/bench_build.py", *session.posargs)
    session.run("python", "scripts/bench_index.py")
    session.run("python", "scripts/bench_upload.py")


@nox.session(default=False)
def release_preflight(session: nox.Session) -> None:
    """Release tag checks: --tag vX.Y.Z [--repo OWNER/NAME] [--main-branch] [--workflow]."""
    _install(session)
    _wheelyard(session, "release-preflight", *session.posargs)


@nox.session(default=False)
def release_smoke(session: nox.Session) -> None:
    """Verify a release set: --dist DIR --expect-version V [--families F...] [--allow-dev]."""
    _install(session)
    _wheelyard(session, "release-smoke", *session.posargs)


@nox.session(default=False)
def promote(session: nox.Session) -> None:
    """Rewrite a set to its final version: --dist DIR --to-version V --out DIR."""
    _install(session)
    _wheelyard(session, "promote", *session.posargs)


@nox.session(default=False)
def publish(session: nox.Session) -> None:
    """Upload a verified set: --dist DIR --repository-url URL [--execute] (dry run without)."""
    _install(session)
    _wheelyard(session, "publish", *session.posargs)


def _profile_families() -> list[str]:
    """The family names of ``packaging/rocm/families.toml``: one test session each."""
    with open("packaging/rocm/families.toml", "rb") as handle:
        return sorted(tomllib.load(handle).get("families", {}))


def _test_session(family: str) -> None:
    def test_family(session: nox.Session) -> None:
        _install(session)
        _wheelyard(session, "test", family, *session.posargs)

    test_family.__doc__ = (
        f"rocm-sdk test on {family}'s wheels: [--find-links URL-or-DIR] [--installer]."
    )
    nox.session(name=f"test-{family}", tags=["test"], default=False)(test_family)


for _family in _profile_families():
    _test_session(_family)


@nox.session(default=False)
def pipeline(session: nox.Session) -> None:
    """Build, index, upload (build/bucket or --bucket) and test: FAMILY... [--bucket B]."""
    parser = argparse.ArgumentParser(prog="nox -s pipeline --")
    parser.add_argument("families", nargs="+")
    parser.add_argument("--bucket")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--run-id", default=f"local-{int(time.time())}")
    args = parser.parse_args(session.posargs)
    _install(session)
    _wheelyard(session, "build", *args.families, "--out", "build")
    _wheelyard(session, "index", "--dist", "build/dist")
    upload = ["upload", "--dist", "build/dist", "--run-id", args.run_id]
    python = f"{args.run_id}-linux/python"
    if args.bucket is None:
        _wheelyard(session, *upload, "--output-dir", "build/bucket")
        links = {family: str(Path("build/bucket", python)) for family in args.families}
    else:
        endpoint = ["--endpoint-url", args.endpoint_url] if args.endpoint_url else []
        _wheelyard(session, *upload, "--bucket", args.bucket, *endpoint)
        base = f"{args.endpoint_url.rstrip('/')}/{args.bucket}" if args.endpoint_url else None
        base = base or f"https://{args.bucket}.s3.amazonaws.com"
        links = {family: f"{base}/{python}/{family}/index.html" for family in args.families}
    for family in args.families:
        _wheelyard(session, "test", family, "--find-links", links[family])
