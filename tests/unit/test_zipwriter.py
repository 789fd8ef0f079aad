"""The hand-written ZIP format: headers, timestamps, modes, zip64, copies."""

from __future__ import annotations

import errno
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from wheelyard.wheelfile import zipwriter
from wheelyard.wheelfile.zipwriter import METHOD_DEFLATED, METHOD_STORED, ZipOutput, dos_datetime


def _add(
    out: ZipOutput, name: str, data: bytes, *, deflated: bool = True, mode: int = 0o644
) -> int:
    payload = data
    if deflated and data:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(data) + compressor.flush()
    method = METHOD_DEFLATED if deflated and data else METHOD_STORED
    start = out.start_entry(
        name, method=method, size=len(data), max_compressed=len(payload) + 64, mode=mode
    )
    out.write(payload)
    out.end_entry(crc=zlib.crc32(data), compressed_size=len(payload), size=len(data))
    return start


@contextmanager
def _archive(path: Path, threshold: int = zipwriter.ZIP64_LIMIT) -> Iterator[ZipOutput]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        out = ZipOutput(fd, epoch=315532800, zip64_threshold=threshold)
        yield out
        out.finish()
    finally:
        os.close(fd)


def _zip64_extra(info: zipfile.ZipInfo) -> bytes | None:
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        if tag == 1:
            return extra[4 : 4 + size]
        extra = extra[4 + size :]
    return None


def _local_extra(raw: bytes, info: zipfile.ZipInfo) -> bytes:
    offset = info.header_offset
    assert raw[offset : offset + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26 : offset + 30])
    return raw[offset + 30 + name_len : offset + 30 + name_len + extra_len]


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (315532800, (1980, 1, 1, 0, 0, 0)),
        (0, (1980, 1, 1, 0, 0, 0)),  # before 1980: clamped
        (1709214331, (2024, 2, 29, 13, 45, 30)),  # odd seconds round down to 2 s
        (2**40, (2107, 12, 31, 23, 59, 58)),  # after 2107: clamped
    ],
)
def test_dos_datetime(epoch: int, expected: tuple[int, ...]) -> None:
    dos_time, dos_date = dos_datetime(epoch)
    year, month, day, hour, minute, second = expected
    assert dos_date == ((year - 1980) << 9) | (month << 5) | day
    assert dos_time == (hour << 11) | (minute << 5) | (second // 2)


def test_entries_read_back_with_fixed_metadata(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with _archive(path) as out:
        _add(out, "pkg/data.txt", b"hello " * 1000)
        _add(out, "pkg/tool", b"#!/bin/sh\n", mode=0o755)
        _add(out, "pkg/empty", b"", deflated=False)
        _add(out, "pkg/stored.bin", b"raw bytes", deflated=False)
        _add(out, "pkg/naïve.txt", "ünïcode".encode())
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = {info.filename: info for info in archive.infolist()}
        assert list(infos) == [
            "pkg/data.txt", "pkg/tool", "pkg/empty", "pkg/stored.bin", "pkg/naïve.txt",
        ]  # fmt: skip
        assert archive.read("pkg/data.txt") == b"hello " * 1000
        assert archive.read("pkg/naïve.txt") == "ünïcode".encode()
        for info in infos.values():
            assert info.create_system == 3
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.extract_version == 20
            assert _zip64_extra(info) is None
            assert info.flag_bits & 0x08 == 0  # no data descriptor
        assert infos["pkg/tool"].external_attr == 0o100755 << 16
        assert infos["pkg/data.txt"].external_attr == 0o100644 << 16
        assert infos["pkg/data.txt"].compress_type == zipfile.ZIP_DEFLATED
        assert infos["pkg/stored.bin"].compress_type == zipfile.ZIP_STORED
        assert infos["pkg/naïve.txt"].flag_bits & 0x800
        assert not infos["pkg/data.txt"].flag_bits & 0x800
    raw = path.read_bytes()
    assert b"PK\x06\x06" not in raw  # no zip64 end record when nothing needs it


def test_local_headers_are_patched_with_crc_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    data = os.urandom(3 << 20)  # larger than the write buffer: the patch goes to the file
    with _archive(path) as out:
        _add(out, "small", b"x")
        _add(out, "big", data)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            at = info.header_offset
            crc, csize, usize = struct.unpack("<III", raw[at + 14 : at + 26])
            assert (crc, csize, usize) == (info.CRC, info.compress_size, info.file_size)
        assert archive.read("big") == data


def test_zip64_fields_where_values_reach_the_threshold(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with _archive(path, threshold=1000) as out:
        _add(out, "tiny", b"abc")  # sizes and offset below the threshold
        _add(out, "random", os.urandom(5000))  # sizes over it
        _add(out, "late", b"abc")  # offset over it
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        tiny, big, late = archive.infolist()
        assert _zip64_extra(tiny) is None
        assert _local_extra(raw, tiny) == b""
        big_extra = _zip64_extra(big)
        assert big_extra is not None
        assert struct.unpack("<QQ", big_extra) == (5000, big.compress_size)
        assert struct.unpack("<QQ", _local_extra(raw, big)[4:]) == (5000, big.compress_size)
        assert big.extract_version == 45
        late_extra = _zip64_extra(late)
        assert late_extra is not None
        assert struct.unpack("<Q", late_extra) == (late.header_offset,)
        assert late.header_offset > 1000
        assert archive.read("late") == b"abc"
    assert raw.count(b"PK\x06\x06") == 1  # the central directory starts past the threshold
    assert raw.count(b"PK\x06\x07") == 1


def test_local_header_without_zip64_refuses_larger_sizes(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "a.zip", os.O_RDWR | os.O_CREAT)
    try:
        out = ZipOutput(fd, epoch=0, zip64_threshold=100)
        out.start_entry("x", method=METHOD_STORED, size=10, max_compressed=10, mode=0o644)
        with pytest.raises(RuntimeError, match="outgrew"):
            out.end_entry(crc=0, compressed_size=10, size=200)
    finally:
        os.close(fd)


def test_more_than_65535_entries_use_the_zip64_end_record(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    count = 0x10000
    with _archive(path) as out:
        for index in range(count):
            _add(out, f"f/{index:05x}", b"", deflated=False)
    raw = path.read_bytes()
    assert raw.count(b"PK\x06\x06") == 1
    entries_field = struct.unpack("<H", raw[-22 + 10 : -22 + 12])[0]
    assert entries_field == 0xFFFF
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert len(names) == count
    assert names[-1] == f"f/{count - 1:05x}"


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_range_appends_bytes_from_this_or_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    if not kernel_copy:

        def refuse(*_args: object, **_kwargs: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    other = tmp_path / "other.bin"
    other.write_bytes(b"0123456789" * 100_000)
    path = tmp_path / "a.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        out = ZipOutput(fd, epoch=0)
        out.write(b"head:")
        out.copy_range(fd, 0, 4)  # from this very file, still buffered when asked
        other_fd = os.open(other, os.O_RDONLY)
        try:
            out.copy_range(other_fd, 5, 999_990)
        finally:
            os.close(other_fd)
        out.write(b":tail")
        assert out.offset == 5 + 4 + 999_990 + 5
        out.flush()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"head:head" + (b"0123456789" * 100_000)[5:999_995] + b":tail"


def test_copy_range_fails_when_the_source_is_short(tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"abc")
    fd = os.open(tmp_path / "a.bin", os.O_RDWR | os.O_CREAT)
    other_fd = os.open(other, os.O_RDONLY)
    try:
        out = ZipOutput(fd, epoch=0)
        with pytest.raises(OSError, match="early"):
            out.copy_range(other_fd, 0, 10)
    finally:
        os.close(other_fd)
        os.close(fd)


def test_misuse_is_caught(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "a.zip", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match="zip64_threshold"):
            ZipOutput(fd, epoch=0, zip64_threshold=0)
        out = ZipOutput(fd, epoch=0)
        with pytest.raises(RuntimeError, match="no entry"):
            out.end_entry(crc=0, compressed_size=0, size=0)
        out.start_entry("a", method=METHOD_STORED, size=0, max_compressed=0, mode=0o644)
        with pytest.raises(RuntimeError, match="previous"):
            out.start_entry("b", method=METHOD_STORED, size=0, max_compressed=0, mode=0o644)
        with pytest.raises(RuntimeError, match="last entry"):
            out.finish()
    finally:
        os.close(fd)
