"""Archived artifacts (``.tar.xz``, ``.tar.zst``): checksum and safe, all-or-nothing extraction."""

from __future__ import annotations

import lzma
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import zstandard

from wheelyard.errors import ArtifactError
from wheelyard.wheelfile import hash_file


def verify_checksum(archive: Path) -> bool:
    """Check ``<archive>.sha256sum`` if it exists; return whether one was checked."""
    sidecar = archive.with_name(archive.name + ".sha256sum")
    if not sidecar.exists():
        return False
    try:
        expected = sidecar.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError):
        raise ArtifactError(sidecar, "unreadable checksum file") from None
    actual, _ = hash_file(archive)
    if actual != expected:
        raise ArtifactError(
            archive,
            f"sha256 {actual} does not match {sidecar.name} ({expected})",
            hint="the download is corrupt: fetch it again",
        )
    return True


@contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    with open(archive, "rb") as raw:
        stream: IO[bytes]
        if archive.name.endswith(".tar.zst"):
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        else:
            stream = lzma.open(raw)  # noqa: SIM115 - closed by the with below
        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            yield tar


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    normal = posixpath.normpath(name)
    if posixpath.isabs(name) or normal == ".." or normal.startswith("../"):
        raise ArtifactError(
            archive,
            f"member {name!r} would be written outside the artifact",
            hint="the archive is malicious or broken; do not use it",
        )
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ArtifactError(archive, f"member {name!r} is a device or pipe; refusing to extract")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(normal), member.linkname))
        if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
            raise ArtifactError(
                archive,
                f"symlink {name!r} -> {member.linkname!r} leaves the artifact",
                hint="the archive is malicious or broken",
            )
    if member.islnk():
        target = posixpath.normpath(member.linkname)
        if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
            raise ArtifactError(
                archive,
                f"hard link {name!r} -> {member.linkname!r} leaves the artifact",
                hint="the archive is malicious or broken",
            )


def extract_archive(archive: Path, destination: Path) -> Path:
    """Verify and extract ``archive`` into ``destination``, all or nothing."""
    verify_checksum(archive)
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with _open_tar(archive) as tar:
            for member in tar:
                _check_member(archive, member)
                tar.extract(member, partial, filter="tar")
    except (tarfile.TarError, lzma.LZMAError, zstandard.ZstdError, EOFError, zlib.error) as exc:
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
