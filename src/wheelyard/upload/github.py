"""The GitHub Actions facts an upload needs, read once from the environment at the CLI edge."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wheelyard.errors import UploadError


@dataclass(frozen=True, kw_only=True)
class GitHubRun:
    """``GITHUB_REPOSITORY``, the pull request's head repository and ``GITHUB_RUN_ID``."""

    repository: str | None = None
    head_repository: str | None = None
    """``owner/repo`` a pull request comes from (the event's ``pull_request.head.repo``)."""
    run_id: str | None = None

    def fork(self, main_repository: str | None) -> str | None:
        """``owner/repo`` whose prefix the run's keys get, or None for the main repository.

        A pull request from a fork runs in the main repository with the fork's code, and a
        workflow in a fork runs in the fork: both are fork runs. Outside Actions there is none.
        """
        if self.head_repository and self.head_repository != self.repository:
            return self.head_repository
        if self.repository and main_repository and self.repository != main_repository:
            return self.repository
        return None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitHubRun:
        return cls(
            repository=environ.get("GITHUB_REPOSITORY") or None,
            head_repository=_head_repository(environ.get("GITHUB_EVENT_PATH")),
            run_id=environ.get("GITHUB_RUN_ID") or None,
        )


def _head_repository(event_path: str | None) -> str | None:
    """The head repository of a ``pull_request`` event file; None for other events.

    An unreadable event file is an error rather than "not a fork": guessing wrong would put a
    fork's files into the main repository's bucket.
    """
    if not event_path:
        return None
    try:
        event: Any = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UploadError(
            f"cannot read the GitHub event file GITHUB_EVENT_PATH={event_path} ({exc})",
            hint="run inside GitHub Actions with its event file, or unset GITHUB_EVENT_PATH",
        ) from None
    request = event.get("pull_request") if isinstance(event, dict) else None
    if request is None:
        return None
    try:
        name = request["head"]["repo"]["full_name"]
    except (KeyError, TypeError):
        name = None
    if not isinstance(name, str) or not name:
        raise UploadError(
            f"{event_path}: a pull_request event without head.repo.full_name",
            hint="the pull request's head repository was deleted; pass --bucket explicitly",
        )
    return name
