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


def same_bytes(one: Path, other: Path) -> bool:
    """Whether two files hold the same bytes: sizes first, then both streamed side by side."""
    if one.stat().st_size != other.stat().st_size:
        return False
    with open(one, "rb") as left, open(other, "rb") as right:  # buffered: full blocks
        while True:
            data = left.read(_BLOCK)
            if data != right.read(_BLOCK):
                return False
            if not data:
                return True
