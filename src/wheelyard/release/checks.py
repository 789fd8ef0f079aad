"""One named check's outcome, and the results table every release command prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wheelyard.report import Reporter


@dataclass(frozen=True, kw_only=True)
class Check:
    """``subject`` (a file, a tag, a family) passed or failed ``name``; ``detail`` says why."""

    subject: str
    name: str
    ok: bool
    detail: str = ""


def failures(checks: Sequence[Check]) -> list[Check]:
    return [check for check in checks if not check.ok]


def report_checks(reporter: Reporter, title: str, checks: Sequence[Check]) -> None:
    """The table of every check, then one ``FAILED subject: check: detail`` line per failure."""
    rows = [
        (check.subject, check.name, "ok" if check.ok else "FAILED", check.detail)
        for check in checks
    ]
    reporter.table(title, ("subject", "check", "result", "detail"), rows)
    for check in failures(checks):
        reporter.result(f"FAILED {check.subject}: {check.name}: {check.detail}")
