"""Archived artifacts (``.tar.xz``, ``.tar.zst``): checksum and confined, all-or-nothing extraction.

No ``tarfile`` extraction filter is used (their checks differ between CPython patch releases).
Members are streamed and checked against a model of what has been extracted so far
(:class:`~wheelyard.artifacts.tree.TreeModel`), then created by a
:class:`~wheelyard.artifacts.confined.ConfinedWriter`, which never follows a link. The tree is
built in a temporary directory beside the destination and renamed into place only when every
member was accepted.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zstandard

from wheelyard.artifacts.confined import ConfinedWriter, read_regular_file
from wheelyard.artifacts.members import Action, MemberChecker
from wheelyard.artifacts.streams import Allowance, Readable, XzReader, open_zstd
from wheelyard.errors import ArtifactError
from wheelyard.report import human_size
from wheelyard.wheelfile import hash_file

DEFAULT_MAX_EXTRACTED = 32 << 30
CHECKSUM_LIMIT = 4096
_HEADER_ALLOWANCE = 16 << 20  # tar headers (long names, pax records) between two members
_DATA_CHUNK = 1 << 20
_CORRUPT = (tarfile.TarError, lzma.LZMAError, zstandard.ZstdError, EOFError, zlib.error)


def verify_checksum(archive: Path) -> bool:
    """Check ``<archive>.sha256sum`` if it exists; return whether one was checked."""
    sidecar = archive.with_name(archive.name + ".sha256sum")
    data = read_regular_file(sidecar, what="checksum file", limit=CHECKSUM_LIMIT)
    if data is None:
        return False
    try:
        expected = data.decode("ascii").split()[0].lower()
    except (UnicodeDecodeError, IndexError):
        raise ArtifactError(sidecar, "unreadable checksum file") from None
    try:
        actual, _ = hash_file(archive)
    except OSError as exc:
        raise ArtifactError(archive, f"cannot read: {exc.strerror}") from None
    if actual != expected:
        raise ArtifactError(
            archive,
            f"sha256 {actual} does not match {sidecar.name} ({expected!r})",
            hint="the download is corrupt: fetch it again",
        )
    return True


@contextmanager
def _decompressed(archive: Path, max_bytes: int) -> Iterator[Readable]:
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArtifactError(archive, f"cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as raw:
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            raise ArtifactError(archive, "is not a regular file")
        if archive.name.endswith(".tar.zst"):
            yield open_zstd(raw, archive, max_bytes=max_bytes)
        else:
            yield XzReader(raw, archive)


def extract_archive(
    archive: Path, destination: Path, *, max_bytes: int = DEFAULT_MAX_EXTRACTED
) -> Path:
    """Verify and extract ``archive`` into ``destination``, all or nothing.

    ``max_bytes`` bounds the sum of the members' declared sizes.
    """
    verify_checksum(archive)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{destination.name}.partial-", dir=destination.parent))
    try:
        _extract_into(archive, partial, max_bytes)
    except _CORRUPT as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ArtifactError(
            archive, f"corrupt or truncated archive ({exc})", hint="fetch the archive again"
        ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    return destination


def _extract_into(archive: Path, partial: Path, max_bytes: int) -> None:
    checker = MemberChecker(archive, partial, max_bytes=max_bytes)
    with (
        _decompressed(archive, max_bytes) as stream,
        ConfinedWriter(partial) as writer,
    ):
        allowance = Allowance(stream, archive)
        allowance.allow(_HEADER_ALLOWANCE, _headers_too_large(None))
        with tarfile.open(fileobj=allowance, mode="r|") as tar:  # type: ignore[call-overload]
            while (member := tar.next()) is not None:
                action = checker.check(member)
                allowance.allow(member.size + _HEADER_ALLOWANCE, _headers_too_large(member.name))
                try:
                    _apply(tar, member, action, writer)
                except OSError as exc:
                    raise ArtifactError(
                        archive, f"member {member.name!r}: cannot extract: {exc.strerror}"
                    ) from None
        # Read to the end, so that a truncated stream or a bad checksum is noticed.
        allowance.allow(_HEADER_ALLOWANCE, "too much data after the end of the tar archive")
        while allowance.read(_DATA_CHUNK):
            pass


def _headers_too_large(after: str | None) -> str:
    where = "the first member" if after is None else f"the member after {after!r}"
    return f"the tar headers of {where} are larger than {human_size(_HEADER_ALLOWANCE)}"


def _apply(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    action: Action,
    writer: ConfinedWriter,
) -> None:
    if action.kind == "dir":
        writer.make_dir(action.path, member.mode)
    elif action.kind == "file":
        writer.write_file(action.path, member.mode, _chunks(tar, member))
    elif action.kind == "symlink":
        writer.symlink(action.path, member.linkname)
    elif action.kind == "hardlink":
        writer.hard_link(action.path, action.existing)


def _chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - checked: only regular files get here
        return
    with source:
        while chunk := source.read(_DATA_CHUNK):
            yield chunk
