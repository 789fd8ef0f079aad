"""The invoke tasks run the nox sessions with the expected command lines (MockContext)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from invoke.context import MockContext
from invoke.exceptions import Exit
from invoke.runners import Result

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import tasks  # noqa: E402

NOX = "nox --reuse-existing-virtualenvs -s"


def _context(*commands: str, exited: int = 0) -> MockContext:
    return MockContext(run={command: Result(exited=exited) for command in commands})


def test_pipeline_runs_the_nox_pipeline_session() -> None:
    command = f"{NOX} pipeline -- gfx94X-dcgpu gfx120X-all"
    c = _context(command)
    tasks.pipeline(c, families="gfx94X-dcgpu gfx120X-all")
    c.run.assert_called_once_with(command, warn=True, pty=False)  # type: ignore[attr-defined]


def test_pipeline_passes_bucket_and_endpoint() -> None:
    command = (
        f"{NOX} pipeline -- gfx94X-dcgpu --bucket test-bucket --endpoint-url http://127.0.0.1:9000"
    )
    c = _context(command)
    tasks.pipeline(c, bucket="test-bucket", endpoint_url="http://127.0.0.1:9000")
    c.run.assert_called_once_with(command, warn=True, pty=False)  # type: ignore[attr-defined]


def test_build_runs_build_then_index() -> None:
    build = f"{NOX} build_wheels -- gfx94X-dcgpu --out out"
    index = f"{NOX} index -- --dist out/dist"
    c = _context(build, index)
    tasks.build(c, families="gfx94X-dcgpu", out="out")
    commands = [call.args[0] for call in c.run.call_args_list]  # type: ignore[attr-defined]
    assert commands == [build, index]


def test_verify_runs_the_family_test_session() -> None:
    command = f"{NOX} test-gfx120X-all -- --find-links 'http://x/a b' --installer uv"
    c = _context(command)
    tasks.verify(c, family="gfx120X-all", find_links="http://x/a b", installer="uv")
    c.run.assert_called_once_with(command, warn=True, pty=False)  # type: ignore[attr-defined]


def test_a_failing_session_exits_with_its_code() -> None:
    command = f"{NOX} pipeline -- gfx94X-dcgpu"
    with pytest.raises(Exit) as failed:
        tasks.pipeline(_context(command, exited=3))
    assert failed.value.code == 3
    assert "nox session pipeline failed (exit 3)" in str(failed.value.message)
