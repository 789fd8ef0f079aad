"""SHA-256 of files, streamed: the one hasher the build, devel archive, index and upload share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

_BLOCK = 4 << 20


class FileDigest(NamedTuple):
    """The hex sha256 of a file's bytes and how many bytes were hashed."""

    sha256: str
    size: int


def hash_file(path: Path) -> FileDigest:
    """Stream ``path`` through SHA-256 in 4 MiB blocks; an unreadable file raises ``OSError``."""
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as stream:
        while count := stream.readinto(buffer):
            digest.update(view[:count])
            size += count
    return FileDigest(digest.hexdigest(), size)
