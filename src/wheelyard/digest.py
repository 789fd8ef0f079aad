"""SHA-256 of files, streamed: the one helper the build, devel archive and index share."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def hash_file(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
