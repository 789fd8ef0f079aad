"""release-preflight against a real git repository and a loopback GitHub API."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.conftest import run_wheelyard

from wheelyard.release import Check, PreflightOptions, preflight

pytestmark = pytest.mark.integration
TOKEN = "ghp_release-test-token-never-printed"
REPO = "example/project"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """main: A - B (v1.0.0 annotated, v1.0.0-light lightweight); feature: B - C (v1.1.0)."""
    root = tmp_path_factory.mktemp("preflight") / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    for message in ("A", "B"):
        _git(root, "commit", "-q", "--allow-empty", "-m", message)
    _git(root, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
    _git(root, "tag", "v1.0.0-light")
    _git(root, "checkout", "-q", "-b", "feature")
    _git(root, "commit", "-q", "--allow-empty", "-m", "C")
    _git(root, "tag", "-a", "v1.1.0", "-m", "unmerged")
    _git(root, "checkout", "-q", "main")
    return {
        "root": str(root),
        "main": _git(root, "rev-parse", "main"),
        "feature": _git(root, "rev-parse", "feature"),
    }


class _Api(BaseHTTPRequestHandler):
    runs: dict[str, list[dict[str, object]]] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urllib.parse.urlsplit(self.path)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if parts.path != f"/repos/{REPO}/actions/workflows/ci.yml/runs":
            self.send_error(404)
            return
        sha = urllib.parse.parse_qs(parts.query).get("head_sha", [""])[0]
        runs = self.runs.get(sha, [])
        body = json.dumps({"total_count": len(runs), "workflow_runs": runs}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    _Api.runs, _Api.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _run(repo: dict[str, str], api: str, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "COLUMNS": "200"}
    return run_wheelyard(
        "release-preflight", "--tag", tag, "--repo", REPO, "--git-dir", repo["root"],
        "--api-url", api, *extra, env=env, timeout=60,
    )  # fmt: skip


def _failed(repo: dict[str, str], api: str, tag: str, kind: str = "annotated") -> list[str]:
    """The library without the CLI (faster): "check: detail" of each failed check."""
    options = PreflightOptions(
        tag=tag,
        repo=REPO,
        git_dir=Path(repo["root"]),
        api_url=api,
        tag_kind=kind,  # type: ignore[arg-type]
    )
    checks: list[Check] = preflight(options, token=TOKEN)
    return [f"{check.subject}: {check.name}: {check.detail}" for check in checks if not check.ok]


def _run_of(conclusion: str | None, status: str = "completed") -> dict[str, object]:
    return {"id": 7, "status": status, "conclusion": conclusion, "html_url": "http://x/7"}


def test_tag_on_main_with_green_ci_passes(repo: dict[str, str], api: str) -> None:
    _Api.runs[repo["main"]] = [_run_of("failure"), _run_of("success")]
    result = _run(repo, api, "v1.0.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "preflight passed" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert _Api.seen
    assert all(auth == f"Bearer {TOKEN}" for _, auth in _Api.seen)
    assert f"head_sha={repo['main']}" in _Api.seen[0][0]


@pytest.mark.parametrize("runs", [[], [_run_of("failure")], [_run_of(None, status="in_progress")]])
def test_missing_or_failed_ci_run_fails(
    repo: dict[str, str], api: str, runs: list[dict[str, object]]
) -> None:
    _Api.runs[repo["main"]] = runs
    failed = _failed(repo, api, "v1.0.0")
    assert len(failed) == 1
    assert f"commit {repo['main'][:12]}: ci-green: " in failed[0]


def test_tag_on_unmerged_branch_fails(repo: dict[str, str], api: str) -> None:
    _Api.runs[repo["feature"]] = [_run_of("success")]
    failed = _failed(repo, api, "v1.1.0")
    assert len(failed) == 1
    assert failed[0].startswith("tag v1.1.0: on-main-branch: ")
    assert "is not reachable from refs/heads/main" in failed[0]


def test_missing_tag_fails(repo: dict[str, str], api: str) -> None:
    result = _run(repo, api, "v9.9.9")
    assert result.returncode == 1
    assert "FAILED tag v9.9.9: tag-exists" in result.stdout
    assert _Api.seen == []


def test_tag_kind_is_checked(repo: dict[str, str], api: str) -> None:
    _Api.runs[repo["main"]] = [_run_of("success")]
    assert _failed(repo, api, "v1.0.0-light") == [
        "tag v1.0.0-light: tag-kind: lightweight, expected annotated"
    ]
    assert _failed(repo, api, "v1.0.0-light", "lightweight") == []
    assert _failed(repo, api, "v1.0.0", "any") == []
    assert len(_failed(repo, api, "v1.0.0", "lightweight")) == 1
