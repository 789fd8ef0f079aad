"""``publish``: compare with the target index first, upload only what is missing, then confirm.

The index is read before anything is sent (PEP 691 JSON, else PEP 503 HTML): a file already
listed with the same sha256 is skipped, one listed with another sha256 (or with no sha256 to
compare) stops the run before any upload, since an index never takes a filename twice. The
rest goes through one ``twine upload`` (credentials from ``TWINE_*``, keyring or Trusted
Publishing; never on the command line, never printed), distributions before the meta that pins
them. Then the index is read again and every file must be listed with its sha256.
"""

from __future__ import annotations

import html.parser
import json
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from packaging.utils import canonicalize_name, parse_wheel_filename

from wheelyard import proc
from wheelyard.errors import ReleaseError
from wheelyard.index import FetchLimits, make_fetch
from wheelyard.profile import is_publishable
from wheelyard.release.smoke import find_wheels
from wheelyard.wheelfile import hash_file

Action = Literal["upload", "skip", "conflict"]


class Reply(Protocol):
    """What a fetch answers (``wheelyard.index.make_fetch``): a 404 is an answer."""

    @property
    def status(self) -> int: ...
    @property
    def content_type(self) -> str: ...
    @property
    def body(self) -> bytes: ...


Fetch = Callable[[str, str, str], Reply]
_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_KNOWN = {
    "https://upload.pypi.org/legacy/": "https://pypi.org/simple/",
    "https://test.pypi.org/legacy/": "https://test.pypi.org/simple/",
}


@dataclass(frozen=True, kw_only=True)
class PlannedFile:
    path: Path
    project: str  # canonical name
    sha256: str
    remote: str | None  # the index's sha256; "" when listed without one; None when absent
    action: Action


def simple_url(repository_url: str, index_url: str | None) -> str:
    """The simple index to read: ``--index-url``, PyPI's/TestPyPI's, else ``URL/simple/``."""
    if index_url:
        return index_url.rstrip("/") + "/"
    known = _KNOWN.get(repository_url.rstrip("/") + "/")
    return known or repository_url.rstrip("/") + "/simple/"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def read_project(fetch: Fetch, index: str, project: str) -> dict[str, str]:
    """filename -> sha256 ("" when the index gives none) of one project; {} when absent."""
    url = f"{index}{project}/"
    response = fetch("GET", url, _ACCEPT)
    if response.status == 404:
        return {}
    if response.status != 200:
        raise ReleaseError(f"GET {url}: HTTP {response.status}", hint="check --index-url")
    if "json" in response.content_type:
        try:
            data = json.loads(response.body)
            return {f["filename"]: f.get("hashes", {}).get("sha256", "") for f in data["files"]}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReleaseError(f"GET {url}: not a PEP 691 project page ({exc})") from None
    parser = _Links()
    parser.feed(response.body.decode("utf-8", "replace"))
    files = {}
    for href in parser.hrefs:
        parts = urllib.parse.urlsplit(href)
        name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
        fragment = dict(urllib.parse.parse_qsl(parts.fragment))
        files[name] = fragment.get("sha256", "")
    return files


def local_files(dist: Path, meta: str) -> list[tuple[Path, str]]:
    """(path, sha256) of each distinct file, the meta last; one name with two contents is fatal."""
    seen: dict[str, tuple[Path, str]] = {}
    for _, path in find_wheels(dist):
        version = parse_wheel_filename(path.name)[1]
        if not is_publishable(str(version)):
            raise ReleaseError(
                f"{path}: {version} is a dev or local version; indexes must never receive it",
                hint="build with --release-type release, rc or nightly",
            )
        digest = hash_file(path).sha256
        earlier = seen.setdefault(path.name, (path, digest))
        if earlier[1] != digest:
            raise ReleaseError(
                f"{earlier[0]} and {path} share a filename but not their bytes",
                hint="one index holds one file per name: publish one family's set at a time",
            )
    meta_key = canonicalize_name(meta)
    return sorted(
        seen.values(),
        key=lambda item: (parse_wheel_filename(item[0].name)[0] == meta_key, item[0].name),
    )


def plan_publish(dist: Path, index: str, meta: str, fetch: Fetch) -> list[PlannedFile]:
    files = local_files(dist, meta)
    remote: dict[str, dict[str, str]] = {}
    planned = []
    for path, digest in files:
        project = str(parse_wheel_filename(path.name)[0])
        if project not in remote:
            remote[project] = read_project(fetch, index, project)
        there = remote[project].get(path.name)
        action: Action = "upload" if there is None else "skip" if there == digest else "conflict"
        planned.append(
            PlannedFile(path=path, project=project, sha256=digest, remote=there, action=action)
        )
    return planned


def check_conflicts(planned: Sequence[PlannedFile], index: str) -> None:
    conflicts = [p for p in planned if p.action == "conflict"]
    if conflicts:
        rows = [
            f"{p.path.name}: ours {p.sha256[:16]}, index {p.remote[:16] or 'no sha256'}"
            for p in conflicts
            if p.remote is not None
        ]
        raise ReleaseError(
            f"{index} already holds different bytes under these names; nothing was uploaded:\n  "
            + "\n  ".join(rows),
            hint="an index never takes a filename twice: promote to X.Y.Z.postN and publish that",
        )


def upload(paths: Sequence[Path], repository_url: str) -> None:
    """One ``twine upload``; credentials come from twine's environment, keyring or OIDC."""
    command = [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        repository_url,
        *map(str, paths),
    ]
    proc.run(command, timeout=3600)


def confirm(planned: Sequence[PlannedFile], index: str, fetch: Fetch) -> list[str]:
    """Files the index does not list with our sha256 after the upload."""
    listed: dict[str, dict[str, str]] = {}
    wrong = []
    for item in planned:
        if item.project not in listed:
            listed[item.project] = read_project(fetch, index, item.project)
        if listed[item.project].get(item.path.name) != item.sha256:
            wrong.append(item.path.name)
    return wrong


def publish(
    dist: Path,
    *,
    repository_url: str,
    index_url: str | None,
    meta: str,
    execute: bool,
    fetch: Fetch | None = None,
) -> list[PlannedFile]:
    """Plan; stop on a conflict; with ``execute`` upload the missing files and confirm them."""
    fetch = fetch or make_fetch(FetchLimits())
    index = simple_url(repository_url, index_url)
    planned = plan_publish(dist, index, meta, fetch)
    if not planned:
        raise ReleaseError(f"--dist {dist} holds no wheels")
    check_conflicts(planned, index)
    missing = [p.path for p in planned if p.action == "upload"]
    if execute and missing:
        upload(missing, repository_url)
    if execute:
        wrong = confirm(planned, index, fetch)
        if wrong:
            raise ReleaseError(
                f"after the upload {index} does not list with the right sha256: "
                + ", ".join(wrong),
                hint="the index may lag (CDN) or rewrote the files: check it before announcing",
            )
    return planned
