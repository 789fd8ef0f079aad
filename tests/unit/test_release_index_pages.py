"""publish reads both simple-API forms: PEP 691 JSON and PEP 503 HTML with #sha256= links."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from wheelyard.errors import ReleaseError
from wheelyard.release.publish import read_project, simple_url


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


def _serving(reply: Reply) -> tuple[list[tuple[str, str, str]], object]:
    calls: list[tuple[str, str, str]] = []

    def fetch(method: str, url: str, accept: str) -> Reply:
        calls.append((method, url, accept))
        return reply

    return calls, fetch


def test_json_page() -> None:
    body = {
        "meta": {"api-version": "1.1"},
        "name": "rocm",
        "files": [
            {"filename": "rocm-7.10.0-py3-none-any.whl", "hashes": {"sha256": "ab" * 32}},
            {"filename": "rocm-7.9.0-py3-none-any.whl", "hashes": {}},
        ],
    }
    calls, fetch = _serving(
        Reply(200, "application/vnd.pypi.simple.v1+json", json.dumps(body).encode())
    )
    files = read_project(fetch, "https://example.invalid/simple/", "rocm")  # type: ignore[arg-type]
    assert files == {"rocm-7.10.0-py3-none-any.whl": "ab" * 32, "rocm-7.9.0-py3-none-any.whl": ""}
    assert calls[0][1] == "https://example.invalid/simple/rocm/"
    assert "application/vnd.pypi.simple.v1+json" in calls[0][2]


def test_html_page_with_relative_and_quoted_links() -> None:
    html = (
        '<html><body><a href="../../packages/rocm-7.10.0-py3-none-any.whl#sha256='
        + "cd" * 32
        + '">rocm-7.10.0-py3-none-any.whl</a>\n'
        '<a href="/p/rocm%2D7.9.0-py3-none-any.whl#md5=00">x</a></body></html>'
    )
    _, fetch = _serving(Reply(200, "text/html", html.encode()))
    files = read_project(fetch, "http://127.0.0.1:1/simple/", "rocm")  # type: ignore[arg-type]
    assert files == {"rocm-7.10.0-py3-none-any.whl": "cd" * 32, "rocm-7.9.0-py3-none-any.whl": ""}


def test_missing_project_is_empty_and_errors_are_reported() -> None:
    _, absent = _serving(Reply(404, "text/html", b"not found"))
    assert read_project(absent, "http://127.0.0.1:1/simple/", "rocm") == {}  # type: ignore[arg-type]
    _, broken = _serving(Reply(500, "text/html", b""))
    with pytest.raises(ReleaseError, match="HTTP 500"):
        read_project(broken, "http://127.0.0.1:1/simple/", "rocm")  # type: ignore[arg-type]
    _, garbage = _serving(Reply(200, "application/vnd.pypi.simple.v1+json", b"[1]"))
    with pytest.raises(ReleaseError, match="not a PEP 691"):
        read_project(garbage, "http://127.0.0.1:1/simple/", "rocm")  # type: ignore[arg-type]


def test_simple_url_for_known_and_other_servers() -> None:
    assert simple_url("https://upload.pypi.org/legacy/", None) == "https://pypi.org/simple/"
    assert simple_url("https://test.pypi.org/legacy", None) == "https://test.pypi.org/simple/"
    assert simple_url("http://127.0.0.1:8080", None) == "http://127.0.0.1:8080/simple/"
    assert simple_url("http://x/legacy/", "http://y/simple") == "http://y/simple/"
