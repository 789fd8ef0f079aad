"""Writing an index plan's files: exclusive temporaries renamed into place, stale pages removed.

Temporary names are random and created with ``O_EXCL | O_NOFOLLOW``, so an entry planted under
a predictable name is never followed or reused. The caller checks every target first
(``confine.check_targets``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _write_exclusive(temporary: Path, chunks: Iterable[bytes]) -> None:
    """Create ``temporary`` (never following or reusing an existing entry) and fill it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(temporary, flags, 0o666), "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)


def replace_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary name; False if it already held it."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        _write_exclusive(temporary, [data])
        os.replace(temporary, path)  # noqa: PTH105 - the atomic rename is the point; keep it explicit
    finally:
        temporary.unlink(missing_ok=True)
    return True


def import_file(source: Path, destination: Path) -> None:
    """Hard link (or copy) ``source`` to ``destination`` through a temporary name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(destination)
    try:
        try:
            os.link(source, temporary, follow_symlinks=False)
        except OSError:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as handle:
                _write_exclusive(temporary, iter(lambda: handle.read(1 << 20), b""))
        os.replace(temporary, destination)  # noqa: PTH105 - as above
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale(dist: Path, pages: Sequence[str], directories: Sequence[str]) -> None:
    """Delete stale pages, then their project directories when nothing else is left in them."""
    for relative in pages:
        (dist / relative).unlink(missing_ok=True)
    for relative in directories:
        directory = dist / relative
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
