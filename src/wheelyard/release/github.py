"""The GitHub REST API calls of a release: workflow runs of one commit, via urllib.

The token comes from the caller (``GITHUB_TOKEN``) and is only ever sent as a header; the
``fetch`` callable is injected so tests answer from a loopback server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wheelyard.errors import ReleaseError

Fetch = Callable[[str, Mapping[str, str]], bytes]
DEFAULT_API_URL = "https://api.github.com"


def urllib_fetch(url: str, headers: Mapping[str, str], *, timeout: float = 30.0) -> bytes:
    """GET ``url``; an HTTP or network failure becomes a ReleaseError naming the URL only."""
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        raise ReleaseError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReleaseError(f"GET {url}: {reason}") from None


@dataclass(frozen=True, kw_only=True)
class WorkflowRun:
    id: int
    status: str
    conclusion: str | None
    url: str

    @property
    def green(self) -> bool:
        return self.status == "completed" and self.conclusion == "success"


def workflow_runs(
    *,
    api_url: str,
    repo: str,
    workflow: str,
    head_sha: str,
    token: str | None,
    fetch: Fetch = urllib_fetch,
) -> list[WorkflowRun]:
    """Every run of ``workflow`` (file name or id) in ``repo`` for commit ``head_sha``."""
    path = "/repos/{}/actions/workflows/{}/runs".format(
        urllib.parse.quote(repo, safe="/"), urllib.parse.quote(workflow, safe="")
    )
    query = urllib.parse.urlencode({"head_sha": head_sha, "per_page": "100"})
    url = f"{api_url.rstrip('/')}{path}?{query}"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "wheelyard-release",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        data = json.loads(fetch(url, headers))
        runs = data["workflow_runs"]
        return [
            WorkflowRun(
                id=int(run["id"]),
                status=str(run.get("status")),
                conclusion=run.get("conclusion"),
                url=str(run.get("html_url", "")),
            )
            for run in runs
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"GET {url}: not a workflow-runs answer ({exc})") from None
