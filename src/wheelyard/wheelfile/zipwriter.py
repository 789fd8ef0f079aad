"""The ZIP format, written by hand: local headers, central directory, zip64 records.

Entries are written in one pass to a seekable file. A local header goes out with zeros where
the CRC and sizes belong and is patched once the data is written, so no data descriptors are
needed. Whether a local header carries a zip64 extra field has to be decided up front, from
the uncompressed size and an upper bound for the compressed size; the central directory then
uses zip64 fields exactly for the values that reach the threshold.

Every entry gets the same timestamp, ``create_system`` 3 (Unix) and a regular-file mode of
0o644 or 0o755; names are UTF-8, flagged as such when they are not ASCII.
"""

from __future__ import annotations

import calendar
import errno
import os
import struct
import time
from dataclasses import dataclass

METHOD_STORED = 0
METHOD_DEFLATED = 8
ZIP64_LIMIT = 0xFFFFFFFF
"""Sizes and offsets from here on need zip64 fields (the 32-bit field holds this marker)."""
_MAX_COUNT = 0xFFFF

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_SIG_LOCAL = 0x04034B50
_SIG_CENTRAL = 0x02014B50
_SIG_END = 0x06054B50
_SIG_END64 = 0x06064B50
_SIG_LOCATOR64 = 0x07064B50
_ZIP64_TAG = 0x0001
_UTF8_FLAG = 0x0800
_UNIX = 3
_VERSION = 20  # 2.0: deflate
_VERSION_ZIP64 = 45  # 4.5: zip64
_DOS_MIN = calendar.timegm((1980, 1, 1, 0, 0, 0))
_DOS_MAX = calendar.timegm((2107, 12, 31, 23, 59, 58))
_FLUSH_AT = 1 << 20
_COPY_BLOCK = 1 << 22


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(time, date) in MS-DOS format for a Unix time, clamped to 1980..2107 (UTC)."""
    tm = time.gmtime(min(max(epoch, _DOS_MIN), _DOS_MAX))
    dos_time = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec // 2)
    dos_date = ((tm.tm_year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    return dos_time, dos_date


@dataclass(frozen=True, kw_only=True)
class _Entry:
    name: bytes
    flags: int
    method: int
    mode: int
    offset: int
    local_zip64: bool
    crc: int = 0
    compressed_size: int = 0
    size: int = 0


class ZipOutput:
    """One ZIP archive being written to an open, readable and writable file descriptor.

    Use :meth:`start_entry`, then :meth:`write` / :meth:`copy_range`, then :meth:`end_entry`;
    :meth:`finish` writes the central directory. The caller owns (and closes) ``fd``.
    """

    def __init__(self, fd: int, *, epoch: int, zip64_threshold: int = ZIP64_LIMIT) -> None:
        if not 0 < zip64_threshold <= ZIP64_LIMIT:
            raise ValueError(f"zip64_threshold must be in 1..{ZIP64_LIMIT}, got {zip64_threshold}")
        self.fd = fd
        self._time, self._date = dos_datetime(epoch)
        self._threshold = zip64_threshold
        self._flushed = os.lseek(fd, 0, os.SEEK_CUR)  # file offset of _buffer[0]
        self._buffer = bytearray()
        self._entries: list[_Entry] = []
        self._open: _Entry | None = None
        self._copy_file_range = hasattr(os, "copy_file_range")

    @property
    def offset(self) -> int:
        """Where the next byte goes."""
        return self._flushed + len(self._buffer)

    def start_entry(
        self, name: str, *, method: int, size: int, max_compressed: int, mode: int
    ) -> int:
        """Write a local header; return the offset where the entry's data starts."""
        if self._open is not None:
            raise RuntimeError("end_entry() the previous entry first")
        encoded = name.encode()
        flags = 0 if name.isascii() else _UTF8_FLAG
        local_zip64 = max(size, max_compressed) >= self._threshold
        self._open = _Entry(
            name=encoded,
            flags=flags,
            method=method,
            mode=mode,
            offset=self.offset,
            local_zip64=local_zip64,
        )
        extra = struct.pack("<HHQQ", _ZIP64_TAG, 16, 0, 0) if local_zip64 else b""
        marker = ZIP64_LIMIT if local_zip64 else 0
        version = _VERSION_ZIP64 if local_zip64 else _VERSION
        self.write(
            _LOCAL.pack(
                _SIG_LOCAL,
                version,
                flags,
                method,
                self._time,
                self._date,
                0,
                marker,
                marker,
                len(encoded),
                len(extra),
            )
            + encoded
            + extra
        )
        return self.offset

    def end_entry(self, *, crc: int, compressed_size: int, size: int) -> None:
        """Patch the local header of the open entry with its CRC-32 and sizes."""
        entry = self._open
        if entry is None:
            raise RuntimeError("no entry is open")
        fits = compressed_size < self._threshold and size < self._threshold
        if not entry.local_zip64 and not fits:
            raise RuntimeError(f"{entry.name!r}: sizes outgrew the local header; bound too low")
        self._patch(entry.offset + 14, struct.pack("<I", crc))
        if entry.local_zip64:
            self._patch(
                entry.offset + _LOCAL.size + len(entry.name) + 4,
                struct.pack("<QQ", size, compressed_size),
            )
        else:
            self._patch(entry.offset + 18, struct.pack("<II", compressed_size, size))
        self._entries.append(
            _Entry(
                name=entry.name,
                flags=entry.flags,
                method=entry.method,
                mode=entry.mode,
                offset=entry.offset,
                local_zip64=entry.local_zip64,
                crc=crc,
                compressed_size=compressed_size,
                size=size,
            )
        )
        self._open = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= _FLUSH_AT:
            self.flush()
            _write_all(self.fd, data)
            self._flushed += len(data)
            return
        self._buffer += data
        if len(self._buffer) >= _FLUSH_AT:
            self.flush()

    def copy_range(self, source_fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes read at ``offset`` of ``source_fd`` (may be this file)."""
        self.flush()
        done = 0
        while done < length and self._copy_file_range:
            try:
                copied = os.copy_file_range(source_fd, self.fd, length - done, offset + done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self._copy_file_range = False  # e.g. across file systems: copy by hand
                break
            if copied == 0:
                raise OSError(errno.EIO, f"copy source ended {length - done} bytes early")
            done += copied
        while done < length:
            block = os.pread(source_fd, min(_COPY_BLOCK, length - done), offset + done)
            if not block:
                raise OSError(errno.EIO, f"copy source ended {length - done} bytes early")
            _write_all(self.fd, block)
            done += len(block)
        self._flushed += length

    def flush(self) -> None:
        if self._buffer:
            _write_all(self.fd, self._buffer)
            self._flushed += len(self._buffer)
            self._buffer.clear()

    def finish(self) -> None:
        """Write the central directory and the end records, and flush."""
        if self._open is not None:
            raise RuntimeError("end_entry() the last entry first")
        start = self.offset
        for entry in self._entries:
            self.write(self._central_record(entry))
        size = self.offset - start
        count = len(self._entries)
        over = [count >= _MAX_COUNT, size >= self._threshold, start >= self._threshold]
        if any(over):
            end64 = self.offset
            self.write(
                _END64.pack(
                    _SIG_END64,
                    _END64.size - 12,
                    (_UNIX << 8) | _VERSION_ZIP64,
                    _VERSION_ZIP64,
                    0,
                    0,
                    count,
                    count,
                    size,
                    start,
                )
            )
            self.write(_LOCATOR64.pack(_SIG_LOCATOR64, 0, end64, 1))
        short_count = _MAX_COUNT if over[0] else count
        self.write(
            _END.pack(
                _SIG_END,
                0,
                0,
                short_count,
                short_count,
                ZIP64_LIMIT if over[1] else size,
                ZIP64_LIMIT if over[2] else start,
                0,
            )
        )
        self.flush()

    def _central_record(self, entry: _Entry) -> bytes:
        fields = []
        values = []
        for value in (entry.size, entry.compressed_size, entry.offset):
            if value >= self._threshold:
                fields.append(value)
                values.append(ZIP64_LIMIT)
            else:
                values.append(value)
        extra = struct.pack(f"<HH{len(fields)}Q", _ZIP64_TAG, 8 * len(fields), *fields)
        if not fields:
            extra = b""
        version = _VERSION_ZIP64 if fields or entry.local_zip64 else _VERSION
        size, compressed_size, offset = values
        return (
            _CENTRAL.pack(
                _SIG_CENTRAL,
                (_UNIX << 8) | version,
                version,
                entry.flags,
                entry.method,
                self._time,
                self._date,
                entry.crc,
                compressed_size,
                size,
                len(entry.name),
                len(extra),
                0,
                0,
                0,
                (0o100000 | entry.mode) << 16,
                offset,
            )
            + entry.name
            + extra
        )

    def _patch(self, offset: int, data: bytes) -> None:
        if offset >= self._flushed:
            start = offset - self._flushed
            self._buffer[start : start + len(data)] = data
        else:
            # A header that straddles the flush point is written whole to the file first.
            self.flush()
            os.pwrite(self.fd, data, offset)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
