"""Decompressed archive streams with bounded memory and a byte allowance the extractor controls.

``.tar.zst``: every frame is walked before anything is decompressed
(:mod:`wheelyard.artifacts.zstdframes`) and the decoder refuses windows above
``ZSTD_MAX_WINDOW``. ``.tar.xz``: the decoder's memory is capped and a stream cut short is an
error. Both: the tar parser may read only as many bytes as the extractor allows, so a header
claiming gigabytes (a long name, a pax record) is refused instead of being read into memory.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from wheelyard.artifacts.zstdframes import ZSTD_MAX_WINDOW, check_frames
from wheelyard.errors import ArtifactError
from wheelyard.report import human_size

XZ_MEMLIMIT = 1 << 28  # 256 MiB: xz -9 needs 65 MiB to decode
_CHUNK = 1 << 16


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class XzReader:
    """Concatenated ``.xz`` streams, decoded with a memory limit; trailing garbage is ignored."""

    def __init__(self, raw: BinaryIO, archive: Path) -> None:
        self._raw = raw
        self._archive = archive
        self._decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
        self._started = False

    def read(self, size: int = -1, /) -> bytes:
        size = size if size > 0 else _CHUNK
        while True:
            if self._decoder.eof:
                rest = self._decoder.unused_data or self._raw.read(_CHUNK)
                if not rest:
                    return b""
                self._decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
                try:
                    data = self._decode(rest, size)
                except lzma.LZMAError:
                    return b""  # garbage after a complete stream, as xz(1) tolerates padding
            else:
                chunk = b"" if not self._decoder.needs_input else self._raw.read(_CHUNK)
                if not chunk and self._decoder.needs_input:
                    raise EOFError("compressed data ends before the end of the xz stream")
                data = self._decode(chunk, size)
            if data:
                return data

    def _decode(self, chunk: bytes, size: int) -> bytes:
        try:
            return self._decoder.decompress(chunk, max_length=size)
        except lzma.LZMAError as exc:
            if "memory usage limit" in str(exc).lower():
                raise ArtifactError(
                    self._archive,
                    f"the xz stream needs more than {human_size(XZ_MEMLIMIT)} of memory to decode",
                    hint="recompress it with a smaller dictionary (xz -9 or less)",
                ) from None
            raise


def open_zstd(raw: BinaryIO, archive: Path, *, max_bytes: int) -> Readable:
    """Walk and check every frame of ``raw``, then return a reader across all of them."""
    check_frames(raw, archive, max_bytes=max_bytes)
    decoder = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    reader: Readable = decoder.stream_reader(raw, read_across_frames=True, closefd=False)
    return reader


class Allowance:
    """Counts the bytes the tar parser reads; more than it is allowed is an error.

    Member data is allowed exactly, so only oversized headers or trailing data can exceed it.
    """

    def __init__(self, source: Readable, archive: Path) -> None:
        self._source = source
        self._archive = archive
        self.count = 0
        self._limit = 0
        self._why = ""

    def allow(self, size: int, why: str) -> None:
        """Allow ``size`` more bytes from here on; ``why`` explains a refusal."""
        self._limit = self.count + size
        self._why = why

    def read(self, size: int = -1, /) -> bytes:
        if self.count >= self._limit:
            raise ArtifactError(self._archive, self._why, hint="the archive is malicious or broken")
        want = min(size if size >= 0 else _CHUNK, self._limit - self.count)
        data = self._source.read(want)
        self.count += len(data)
        return data

    def close(self) -> None:
        """tarfile closes what it reads from; the owner of the source closes it."""
