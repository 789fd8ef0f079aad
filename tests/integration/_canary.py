"""Canaries outside the work area, and snapshots that show any change to a tree."""

from __future__ import annotations

import os
from pathlib import Path


def plant_canary(path: Path) -> Path:
    """A file the tool must never touch: fixed content, mode and mtime."""
    path.parent.mkdir(parents=True)
    path.write_bytes(b"do not touch\n")
    path.chmod(0o640)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def snapshot(path: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``path`` (and ``path`` itself): kind, mode, owner, times, links, bytes."""
    found: dict[str, tuple[object, ...]] = {}
    for entry in [path, *sorted(path.rglob("*"))]:
        info = entry.lstat()
        data = entry.read_bytes() if entry.is_file() and not entry.is_symlink() else b""
        found[str(entry.relative_to(path))] = (
            info.st_mode,
            info.st_uid,
            info.st_gid,
            info.st_mtime_ns,
            info.st_nlink,
            info.st_ino,
            data,
        )
    return found
