"""The devel archive: the family's whole tree as one deterministic tar plus its manifest.

The devel wheel ships ``devel.tar`` (uncompressed GNU tar, entries relative to the devel root) and
``devel-manifest.json``. Files that a runtime wheel already installs are stored as "runtime-link"
entries: relative symlinks from ``<path>`` under the devel module's ``root`` directory into the
runtime wheel's install directory. ``rocm-sdk init``
(``packaging/rocm/templates/rocm_sdk/_devel.py``) checks every entry against the manifest and
turns runtime links into hard links.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from wheelyard.errors import DevelError
from wheelyard.wheelfile import FileDigest, hash_file

EntryType = Literal["file", "runtime-link", "symlink", "dir"]

MANIFEST_SCHEMA = 1
DEVEL_ROOT = "root"
_DIR_MODE = 0o755
_EXEC_MODE = 0o755
_FILE_MODE = 0o644
_LINK_MODE = 0o777
_OUTSIDE = "\0site-packages"  # sentinel path component; no real name contains NUL
_DEVEL_MODULE = "\0devel-module"


@dataclass(frozen=True, kw_only=True)
class DevelEntry:
    """One entry of the devel tree."""

    path: str  # relative to the devel root, posix separators
    type: EntryType
    source: Path | None = None  # "file" and "runtime-link": the bytes to store / to hash
    target: str | None = None  # "symlink" and "runtime-link": the link target
    executable: bool = False


def runtime_link_target(path: str, *, module: str, module_path: str) -> str:
    """Target of the symlink ``<path>`` (below the devel root) to ``<module>/<module_path>``.

    Climbs out of the entry's directories, ``root/`` and the devel module to site-packages.
    """
    _check_relative_path(path, what="path")
    _check_relative_path(module_path, what="module path")
    ups = path.count("/") + 2
    return "/".join([".."] * ups + [module, module_path])


def plan_devel_entries(entries: Iterable[DevelEntry]) -> list[DevelEntry]:
    """Validate ``entries``, add the directories they imply, and sort them by path."""
    by_path: dict[str, DevelEntry] = {}
    for entry in entries:
        _check_entry(entry)
        if entry.path in by_path:
            raise DevelError(entry.path, "listed twice", hint="give every devel path one entry")
        by_path[entry.path] = entry
    for path in sorted(by_path):
        parent = posixpath.dirname(path)
        while parent:
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = DevelEntry(path=parent, type="dir")
            elif existing.type != "dir":
                raise DevelError(
                    parent,
                    f"is a {existing.type} but {path} lies below it",
                    hint="a path cannot be both a directory and another kind of entry",
                )
            parent = posixpath.dirname(parent)
    return [by_path[path] for path in sorted(by_path)]


def write_devel_archive(
    entries: Sequence[DevelEntry],
    *,
    tar_path: Path,
    manifest_path: Path,
    source_date_epoch: int,
) -> None:
    """Write ``devel.tar`` and its manifest; both appear only when complete (temp name, rename)."""
    planned = plan_devel_entries(entries)
    suffix = f".tmp-{os.getpid()}"
    tmp_tar = tar_path.with_name(f".{tar_path.name}{suffix}")
    tmp_manifest = manifest_path.with_name(f".{manifest_path.name}{suffix}")
    try:
        records: list[dict[str, Any]] = []
        with (
            open(tmp_tar, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for entry in planned:
                records.append(_add_entry(tar, entry, mtime=source_date_epoch))
        manifest = {"schema": MANIFEST_SCHEMA, "root": DEVEL_ROOT, "entries": records}
        with open(tmp_manifest, "w", encoding="utf-8", newline="\n") as out:
            json.dump(manifest, out, indent=1)
            out.write("\n")
        tmp_tar.replace(tar_path)
        tmp_manifest.replace(manifest_path)
    finally:
        for leftover in (tmp_tar, tmp_manifest):
            leftover.unlink(missing_ok=True)


class _HashingReader:
    """A read-only file wrapper that hashes and counts what tarfile reads through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def _add_entry(tar: tarfile.TarFile, entry: DevelEntry, *, mtime: int) -> dict[str, Any]:
    info = tarfile.TarInfo(entry.path)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    record: dict[str, Any] = {"path": entry.path, "type": entry.type}
    if entry.type == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = _DIR_MODE
        tar.addfile(info)
    elif entry.type == "symlink":
        assert entry.target is not None  # checked by _check_entry
        info.type = tarfile.SYMTYPE
        info.mode = _LINK_MODE
        info.linkname = entry.target
        tar.addfile(info)
        record["target"] = entry.target
    elif entry.type == "runtime-link":
        assert entry.source is not None
        assert entry.target is not None
        info.type = tarfile.SYMTYPE
        info.mode = _LINK_MODE
        info.linkname = entry.target
        tar.addfile(info)
        digest, size = _hash_file(entry)
        record.update(target=entry.target, size=size, sha256=digest)
    else:
        assert entry.source is not None
        info.type = tarfile.REGTYPE
        info.mode = _EXEC_MODE if entry.executable else _FILE_MODE
        info.size = _regular_file_size(entry)
        with open(entry.source, "rb") as raw:
            reader = _HashingReader(raw)
            try:
                tar.addfile(info, reader)
            except OSError as exc:
                raise DevelError(
                    entry.path, f"source {entry.source} changed while archiving ({exc})"
                ) from None
        record.update(size=reader.size, sha256=reader.digest.hexdigest(), mode=info.mode)
    return record


def _hash_file(entry: DevelEntry) -> FileDigest:
    assert entry.source is not None
    _regular_file_size(entry)
    st = entry.source.stat()
    return _hash_identity(entry.source, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _hash_identity(path: Path, dev: int, ino: int, size: int, mtime_ns: int) -> FileDigest:
    """Several families' devel archives link the same runtime file (one shared RUNPATH-edited
    copy of a 1.3 GB library): hash each file once, keyed by what identifies its content."""
    return hash_file(path)


def _regular_file_size(entry: DevelEntry) -> int:
    assert entry.source is not None
    try:
        st = entry.source.stat()
    except OSError as exc:
        raise DevelError(
            entry.path, f"cannot read source {entry.source} ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise DevelError(entry.path, f"source {entry.source} is not a regular file")
    return st.st_size


def _check_entry(entry: DevelEntry) -> None:
    _check_relative_path(entry.path, what="path")
    needs_source = entry.type in ("file", "runtime-link")
    needs_target = entry.type in ("symlink", "runtime-link")
    if entry.type not in ("file", "runtime-link", "symlink", "dir"):
        raise DevelError(entry.path, f"unknown entry type {entry.type!r}")
    if needs_source != (entry.source is not None):
        raise DevelError(
            entry.path, f"a {entry.type} entry {'needs' if needs_source else 'takes no'} source"
        )
    if needs_target != (entry.target is not None):
        raise DevelError(
            entry.path, f"a {entry.type} entry {'needs' if needs_target else 'takes no'} target"
        )
    if entry.target is None:
        return
    if entry.target.startswith("/") or not entry.target:
        raise DevelError(entry.path, f"link target {entry.target!r} must be a relative path")
    parent = posixpath.dirname(entry.path)
    if entry.type == "symlink":
        landed = _resolve([DEVEL_ROOT, *_parts(parent)], entry.target)
        if landed is None or landed[:1] != [DEVEL_ROOT]:
            raise DevelError(
                entry.path,
                f"symlink target {entry.target!r} leaves the devel root",
                hint="files of runtime wheels must be runtime-link entries",
            )
    else:
        base = [_OUTSIDE, _DEVEL_MODULE, DEVEL_ROOT, *_parts(parent)]
        landed = _resolve(base, entry.target)
        if landed is None or len(landed) < 3 or landed[1] == _DEVEL_MODULE:
            raise DevelError(
                entry.path,
                f"runtime-link target {entry.target!r} does not point into another module "
                "beside the devel module",
                hint="build it with wheelyard.devel.runtime_link_target()",
            )


def _resolve(base: list[str], target: str) -> list[str] | None:
    """Lexically apply ``target`` to ``base``; None if it climbs above ``base[0]``."""
    stack = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(stack) <= 1:
                return None
            stack.pop()
        else:
            stack.append(part)
    return stack


def _parts(path: str) -> list[str]:
    return path.split("/") if path else []


def _check_relative_path(path: str, *, what: str) -> None:
    if not path or path.startswith("/") or "\0" in path or "\\" in path:
        raise DevelError(path or "''", f"{what} must be a non-empty relative posix path")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise DevelError(path, f"{what} must not contain empty, '.' or '..' components")
