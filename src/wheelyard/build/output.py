"""The build's ``--out`` directory: checked first, locked, merged with what is there, swapped.

A build writes a complete new output tree in a staging directory beside ``--out``: its own
wheels, plus hard links to every file of the old output that it keeps (other families' wheels,
identical generic wheels, files it did not write). The new tree then replaces the old one by one
``renameat2(RENAME_EXCHANGE)``, so at every instant ``--out`` is either the complete old output
or the complete new one. A lock file beside ``--out`` (``flock``, released by the kernel when the
process dies) keeps two builds apart, and staging left behind by a killed build is removed by the
next one.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wheelyard.errors import OutputError, UsageError
from wheelyard.wheelfile import same_bytes

MANIFEST_NAME = "build-manifest.json"
CLOSURE_REPORT_NAME = "closure-report.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_CLEAN_HINT = "pass --clean to start from an empty --out, or build into another --out"


def check_out(out: Path, artifacts: Path) -> Path:
    """``--out`` resolved, after refusing a file, a path inside a file, or overlap with input."""
    resolved = out.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise UsageError("--out", f"{out} is a file, not a directory", hint="name a directory")
    for parent in resolved.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError("--out", f"{out} is inside {parent}, which is a file")
    if resolved == resolved.parent:
        raise UsageError("--out", "the file system root cannot be the output directory")
    source = artifacts.resolve()
    if resolved == source or source in resolved.parents or resolved in source.parents:
        raise UsageError(
            "--out",
            f"{out} overlaps --artifacts {artifacts}",
            hint="write the output somewhere outside the artifacts, and the other way round",
        )
    return resolved


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``.<out>.lock`` beside ``out`` for the whole build; a second build is refused."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputError(
                out,
                f"in use by another build (pid {holder})",
                hint="wait for it to finish, or build into another --out",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _remove_leftovers(out)
        yield
    finally:
        os.close(fd)


def new_staging(out: Path) -> Path:
    """An empty directory beside ``out`` with the mode a plain ``mkdir`` would give it."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _remove_leftovers(out: Path) -> None:
    """Staging trees of builds that were killed (only ever called under the lock)."""
    for leftover in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)


@dataclass(frozen=True, kw_only=True)
class Carried:
    """What a build kept of the previous output."""

    manifest_files: tuple[dict[str, Any], ...]  # old manifest entries still valid
    families: tuple[str, ...]  # families of the old output that stay
    closure: dict[str, Any] | None
    kept: int  # files carried over (hard links)
    replaced: tuple[str, ...]  # old files of the rebuilt families that are gone now


def carry_over(
    out: Path,
    staging: Path,
    *,
    version: str,
    families: Sequence[str],
    written: Mapping[str, str],
) -> Carried:
    """Link what the new output keeps of ``out`` into ``staging``; refuse conflicting files.

    ``written`` maps each path the new build wrote (relative to the output) to its sha256.
    """
    if not out.is_dir():
        return Carried(manifest_files=(), families=(), closure=None, kept=0, replaced=())
    old = _read_json(out / MANIFEST_NAME)
    entries = {e["path"]: e for e in (old or {}).get("files", []) if isinstance(e, dict)}
    if old is not None and old.get("version") != version:
        raise OutputError(
            out,
            f"holds version {old.get('version')}; this build makes {version}, and one output "
            "holds one version",
            hint=_CLEAN_HINT,
        )
    rebuilt = set(families)
    replaced = sorted(p for p, e in entries.items() if e.get("family") in rebuilt)
    kept_entries = []
    for path, entry in sorted(entries.items()):
        rewritten = entry.get("family") in rebuilt
        if path in written and not rewritten and entry.get("sha256") != written[path]:
            raise OutputError(
                out / path,
                "differs from the file this build wrote under the same name; one filename "
                "must mean one content",
                hint=_CLEAN_HINT,
            )
        if entry.get("family") not in rebuilt and path not in written:
            kept_entries.append(entry)
    skip = {MANIFEST_NAME, CLOSURE_REPORT_NAME, *replaced}
    kept = _link_tree(out, staging, skip=skip, written=written)
    old_families = [f for f in (old or {}).get("families", []) if f not in rebuilt]
    return Carried(
        manifest_files=tuple(kept_entries),
        families=tuple(sorted(old_families)),
        closure=_read_json(out / CLOSURE_REPORT_NAME),
        kept=kept,
        replaced=tuple(replaced),
    )


def _link_tree(out: Path, staging: Path, *, skip: set[str], written: Mapping[str, str]) -> int:
    """Hard-link every file of ``out`` but ``skip`` into ``staging``; return how many."""
    count = 0
    for root, dirs, files in os.walk(out):
        dirs.sort()
        rel_root = Path(root).relative_to(out)
        for name in sorted(files):
            rel = (rel_root / name).as_posix()
            if rel in skip:
                continue
            source, target = Path(root) / name, staging / rel
            if rel in written:
                if not (out / rel).is_symlink() and same_bytes(source, target):
                    continue
                raise OutputError(
                    source,
                    "is not listed in the build manifest, and this build writes a file "
                    "under that name",
                    hint="move the file away, or " + _CLEAN_HINT,
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.symlink_to(source.readlink())
            else:
                try:
                    os.link(source, target, follow_symlinks=False)
                except OSError:
                    shutil.copy2(source, target, follow_symlinks=False)
            count += 1
        for name in dirs:
            (staging / rel_root / name).mkdir(parents=True, exist_ok=True)
    return count


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(path, f"is not valid JSON ({exc})", hint=_CLEAN_HINT) from None
    if not isinstance(document, dict):
        raise OutputError(path, "is not a JSON object", hint=_CLEAN_HINT)
    return document


def merge_closure(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The closure report of the merged output: the new wheels' files replace the old ones."""
    if old is None:
        return new
    wheels = {item["wheel"] for item in new["files"]}
    files = [i for i in old.get("files", []) if i.get("wheel") not in wheels] + new["files"]
    files.sort(key=lambda item: (item["wheel"], item["path"]))
    missing = [m for m in old.get("missing", []) if m.get("wheel") not in wheels]
    missing = sorted(missing + new["missing"], key=lambda m: (m["wheel"], m["path"]))
    counts = dict.fromkeys(("same_wheel", "dependency", "system", "external", "missing"), 0)
    for item in files:
        for where in item["needed"].values():
            if where == f"wheel:{item['wheel']}":
                counts["same_wheel"] += 1
            elif where.startswith("wheel:"):
                counts["dependency"] += 1
            else:
                counts[where] = counts.get(where, 0) + 1
    needed = sum(len(item["needed"]) for item in files)
    return {
        **new,
        "totals": {"files": len(files), "needed": needed, **counts},
        "external": sorted(set(old.get("external", [])) | set(new["external"])),
        "missing": missing,
        "files": files,
    }


def swap_into_place(staging: Path, out: Path) -> None:
    """Make ``staging`` the new ``out`` atomically; the old output is removed afterwards."""
    if not out.exists():
        staging.rename(out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old output
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent)) / "old"
    out.rename(old)
    staging.rename(out)
    shutil.rmtree(old.parent, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(RENAME_EXCHANGE)``: swap two paths in one step, where the system can."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))
