"""Carry out an upload plan on any backend: check, package files, sidecars, verify, pages last.

1. Read every immutable key back (HEAD): absent is sent, the same sha256 and size is skipped,
   anything else stops the upload before a single byte is written.
2. Package files, then ``.metadata`` sidecars, each created only if absent.
3. Read each of them back again: size and sha256 must match, or no page is written.
4. Pages whose bytes changed: simple pages and the landing page, then each family's flat
   ``index.html`` last, so an installer never sees a link to a file not yet there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from wheelyard.errors import UploadError
from wheelyard.report import Reporter
from wheelyard.upload.backend import Backend, StoredObject, conflict_error
from wheelyard.upload.plan import PlannedObject, UploadPlan

Action = Literal["uploaded", "skipped", "replaced"]


@dataclass(frozen=True, kw_only=True)
class ObjectResult:
    item: PlannedObject
    action: Action


@dataclass(frozen=True, kw_only=True)
class UploadResult:
    plan: UploadPlan
    results: tuple[ObjectResult, ...]

    def count(self, action: Action) -> int:
        return sum(result.action == action for result in self.results)

    @property
    def transferred_bytes(self) -> int:
        return sum(r.item.size for r in self.results if r.action != "skipped")


def _verify(backend: Backend, items: Sequence[PlannedObject]) -> None:
    stored = backend.stat([item.key for item in items])
    wrong = []
    for item in items:
        found = stored[item.key]
        if found is None or not found.holds(item):
            seen = "absent" if found is None else f"{found.size} bytes, sha256 {found.sha256}"
            wrong.append(f"{backend.describe(item.key)}: {seen}")
    if wrong:
        raise UploadError(
            "objects read back after the upload do not match what was sent:\n" + "\n".join(wrong),
            hint="the store lost or changed them; no flat index page was written. Run the "
            "upload again, and check the bucket for other writers",
        )


def _send(
    backend: Backend, items: Sequence[PlannedObject], on_bytes: Callable[[int], None]
) -> dict[str, str]:
    """Write ``items`` phase by phase, in plan order."""
    outcomes: dict[str, str] = {}
    for phase in dict.fromkeys(item.phase for item in items):
        batch = [item for item in items if item.phase == phase]
        outcomes.update(backend.put(batch, on_bytes=on_bytes))
    return outcomes


def apply_upload(plan: UploadPlan, backend: Backend, *, reporter: Reporter) -> UploadResult:
    """Upload what is missing; never replace a package file; pages after everything else."""
    files = [item for item in plan.objects if item.immutable]
    pages = [item for item in plan.objects if not item.immutable]
    stored: dict[str, StoredObject | None] = backend.stat([item.key for item in plan.objects])
    conflicts = [
        (backend.describe(item.key), found, item)
        for item in files
        if (found := stored[item.key]) is not None and not found.holds(item)
    ]
    if conflicts:
        raise conflict_error(conflicts)
    missing = [item for item in files if stored[item.key] is None]
    changed = [
        item for item in pages if (found := stored[item.key]) is None or not found.holds(item)
    ]
    sent: dict[str, str] = {}
    if missing or changed:
        with reporter.progress("upload", sum(item.size for item in (*missing, *changed))) as bar:
            sent = _send(backend, missing, bar.advance)
            _verify(backend, missing)
            _send(backend, changed, bar.advance)
            _verify(backend, changed)
    changed_keys = {item.key for item in changed}
    results = []
    for item in plan.objects:
        action: Action = "skipped"
        if item.immutable and sent.get(item.key) == "uploaded":
            action = "uploaded"
        elif item.key in changed_keys:
            action = "uploaded" if stored[item.key] is None else "replaced"
        results.append(ObjectResult(item=item, action=action))
    return UploadResult(plan=plan, results=tuple(results))
