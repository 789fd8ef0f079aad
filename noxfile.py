"""Sessions: the front door of wheelyard. Each installs the project and runs one command."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str) -> None:
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".", *deps)


@nox.session
def build_wheels(session: nox.Session) -> None:
    """Split artifacts into wheels: FAMILY... [--artifacts DIR] [--out DIR] [--version V]."""
    _install(session)
    session.run("wheelyard", "build", *session.posargs)


@nox.session
def index(session: nox.Session) -> None:
    """Write pip/uv indexes for build/dist: [--dist DIR] [--merge-from DIR-or-URL]."""
    _install(session)
    session.run("wheelyard", "index", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest arguments pass through)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict."""
    _install(session, "lint")
    session.run("ruff", "check", "src", "tests", "scripts", "noxfile.py", "tasks.py")
    session.run("ruff", "format", "--check", "src", "tests", "scripts", "noxfile.py", "tasks.py")
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (build, index); figures go to docs/benchmarks.md by hand."""
    _install(session, "bench")
    session.run("python", "scripts/bench_build.py", *session.posargs)
    session.run("python", "scripts/bench_index.py")
