"""The wheel writer: layout, RECORD, determinism, zip64, dedup, streaming and failures."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import random
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelyard.errors import UsageError, VersionError, WheelError
from wheelyard.wheelfile import deflate
from wheelyard.wheelfile.deflate import CHUNK_SIZE
from wheelyard.wheelfile.writer import (
    FileEntry,
    WheelSpec,
    WrittenWheel,
    dist_info_name,
    wheel_filename,
    write_wheels,
)

DIST = "demo-1.0.dist-info"
META = (
    FileEntry(
        arcname=f"{DIST}/METADATA", data=b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    ),
    FileEntry(arcname=f"{DIST}/WHEEL", data=b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"),
    FileEntry(arcname=f"{DIST}/entry_points.txt", data=b"[console_scripts]\ndemo = demo:main\n"),
)


def _mixed(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(30_000)
        out += b"".join(b"symbol_%d = %d\n" % (rng.randrange(500), i) for i in range(3000))
    return bytes(out[:size])


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _spec(path: Path, *entries: FileEntry, dist_info: str = DIST) -> WheelSpec:
    return WheelSpec(path=path, dist_info=dist_info, entries=(*entries, *META))


def _verify(path: Path, *, stored: bool = False) -> dict[str, bytes]:
    """Read every entry, check CRCs, RECORD (order, hashes, sizes) and fixed metadata."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        contents = {info.filename: archive.read(info) for info in infos}
    names = [info.filename for info in infos]
    record_name = names[-1]
    assert record_name.endswith(".dist-info/RECORD")
    dist_info = record_name.rsplit("/", 1)[0] + "/"
    outside = [n for n in names[:-1] if not n.startswith(dist_info)]
    inside = [n for n in names[:-1] if n.startswith(dist_info)]
    assert names[:-1] == sorted(outside) + sorted(inside)
    record = contents[record_name]
    assert b"\r" not in record
    rows = list(csv.reader(io.StringIO(record.decode(), newline="")))
    assert [row[0] for row in rows] == names
    assert rows[-1] == [record_name, "", ""]
    for name, digest, size in rows[:-1]:
        expected = base64.urlsafe_b64encode(hashlib.sha256(contents[name]).digest())
        assert digest == "sha256=" + expected.rstrip(b"=").decode()
        assert int(size) == len(contents[name])
    for info in infos:
        assert info.create_system == 3
        assert info.external_attr >> 16 in (0o100644, 0o100755)
        want = zipfile.ZIP_STORED if stored or not info.file_size else zipfile.ZIP_DEFLATED
        assert info.compress_type == want
    return contents


class _Counter:
    """Counts the bytes that go into compressors (patched into wheelyard.deflate)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fed = 0
        real = deflate.new_compressor
        counter = self

        class Counting:
            def __init__(self, level: int, history: bytes) -> None:
                self._inner = real(level, history)

            def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
                counter.fed += len(data)
                return self._inner.compress(data)

            def flush(self, mode: int = zlib.Z_FINISH, /) -> bytes:
                return self._inner.flush(mode)

        monkeypatch.setattr(deflate, "new_compressor", Counting)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    return {
        "big": _file(src / "libbig.so.1", _mixed(CHUNK_SIZE * 2 + 4321, seed=1)),
        "text": _file(src / "notes.txt", b"some notes\n" * 300),
        "tool": _file(src / "tool", b"#!/bin/sh\necho hi\n"),
        "empty": _file(src / "empty", b""),
    }


def _entries(tree: dict[str, Path]) -> tuple[FileEntry, ...]:
    return (
        FileEntry(arcname="demo/lib/libbig.so.1", source=tree["big"]),
        FileEntry(arcname="demo/bin/tool", source=tree["tool"], executable=True),
        FileEntry(arcname="demo/notes.txt", source=tree["text"]),
        FileEntry(arcname="demo/__init__.py", source=tree["empty"]),
        FileEntry(arcname="demo/_générée.json", data=b'{"generated": true}\n'),
    )


def test_wheel_layout_record_modes_and_timestamps(tmp_path: Path, tree: dict[str, Path]) -> None:
    path = tmp_path / "dist" / "demo-1.0-py3-none-any.whl"
    (written,) = write_wheels([_spec(path, *_entries(tree))], jobs=2)
    contents = _verify(path)
    assert list(contents) == [
        "demo/__init__.py",
        "demo/_générée.json",
        "demo/bin/tool",
        "demo/lib/libbig.so.1",
        "demo/notes.txt",
        f"{DIST}/METADATA",
        f"{DIST}/WHEEL",
        f"{DIST}/entry_points.txt",
        f"{DIST}/RECORD",
    ]
    assert contents["demo/lib/libbig.so.1"] == tree["big"].read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    assert infos["demo/bin/tool"].external_attr == 0o100755 << 16
    assert infos["demo/notes.txt"].external_attr == 0o100644 << 16
    assert infos["demo/__init__.py"].compress_type == zipfile.ZIP_STORED
    assert infos["demo/_générée.json"].flag_bits & 0x800
    assert not infos["demo/notes.txt"].flag_bits & 0x800
    assert {info.date_time for info in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    data = path.read_bytes()
    assert written == WrittenWheel(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        files=9,
        uncompressed_size=sum(len(v) for v in contents.values()),
    )
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_same_bytes_for_any_jobs_and_on_rebuild(tmp_path: Path, tree: dict[str, Path]) -> None:
    small = [FileEntry(arcname=f"demo/s/{i:03d}.txt", data=b"x%d\n" % i * i) for i in range(40)]
    entries = (*_entries(tree), *small)
    digests = set()
    for jobs in (1, 4, 4):
        out = tmp_path / f"jobs{jobs}"
        (written,) = write_wheels([_spec(out / "demo.whl", *entries)], jobs=jobs)
        digests.add(written.sha256)
        _verify(written.path)
    assert len(digests) == 1


def test_source_date_epoch_sets_every_timestamp(tmp_path: Path, tree: dict[str, Path]) -> None:
    path = tmp_path / "demo.whl"
    write_wheels([_spec(path, *_entries(tree))], source_date_epoch=1_700_000_001)
    with zipfile.ZipFile(path) as archive:
        stamps = {info.date_time for info in archive.infolist()}
    assert stamps == {(2023, 11, 14, 22, 13, 20)}


def test_level_zero_stores_every_entry(tmp_path: Path, tree: dict[str, Path]) -> None:
    path = tmp_path / "demo.whl"
    write_wheels([_spec(path, *_entries(tree))], compression_level=0)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.read("demo/lib/libbig.so.1") == tree["big"].read_bytes()


@pytest.mark.parametrize("level", [0, 6])
def test_zip64_forced_by_a_low_threshold(tmp_path: Path, tree: dict[str, Path], level: int) -> None:
    path = tmp_path / "demo.whl"
    write_wheels([_spec(path, *_entries(tree))], zip64_threshold=5000, compression_level=level)
    _verify(path, stored=level == 0)
    raw = path.read_bytes()
    assert raw.count(b"PK\x06\x06") == 1  # zip64 end of central directory, and its locator
    assert raw.count(b"PK\x06\x07") == 1
    with zipfile.ZipFile(path) as archive:
        big = archive.getinfo("demo/lib/libbig.so.1")
        assert big.extract_version == 45
        assert struct.unpack("<HH", big.extra[:4]) == (1, 16)  # zip64: size, compressed size
        name_len, extra_len = struct.unpack(
            "<HH", raw[big.header_offset + 26 : big.header_offset + 30]
        )
        local_extra = raw[big.header_offset + 30 + name_len :][:extra_len]
        assert struct.unpack("<HHQQ", local_extra) == (1, 16, big.file_size, big.compress_size)
        record = archive.getinfo(f"{DIST}/RECORD")
        assert record.header_offset > 5000
        assert struct.unpack("<HHQ", record.extra) == (1, 8, record.header_offset)


def test_identical_file_twice_is_deflated_once(
    tmp_path: Path, tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _Counter(monkeypatch)
    path = tmp_path / "demo.whl"
    twin = FileEntry(arcname="demo/lib/libbig.so", source=tree["big"])
    write_wheels([_spec(path, *_entries(tree), twin)], jobs=2)
    big = tree["big"].stat().st_size
    assert big <= counter.fed < big + 10_000  # the twin and the small entries
    contents = _verify(path)
    assert contents["demo/lib/libbig.so"] == contents["demo/lib/libbig.so.1"]
    with zipfile.ZipFile(path) as archive:
        one, two = archive.getinfo("demo/lib/libbig.so"), archive.getinfo("demo/lib/libbig.so.1")
        assert (one.CRC, one.compress_size) == (two.CRC, two.compress_size)


def test_equal_files_in_different_wheels_are_deflated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _mixed(CHUNK_SIZE + 999, seed=2)
    first = _file(tmp_path / "a" / "libx.so", data)
    second = _file(tmp_path / "b" / "libx.so", data)  # same bytes, another inode
    other = _file(tmp_path / "c" / "liby.so", _mixed(len(data), seed=3))  # same size only
    counter = _Counter(monkeypatch)
    specs = [
        _spec(tmp_path / "one.whl", FileEntry(arcname="x/libx.so", source=first)),
        _spec(tmp_path / "two.whl", FileEntry(arcname="x/libx.so", source=second)),
        _spec(tmp_path / "three.whl", FileEntry(arcname="x/liby.so", source=other)),
    ]
    written = write_wheels(specs, jobs=3)
    assert 2 * len(data) <= counter.fed < 2 * len(data) + 5000
    for wheel in written:
        _verify(wheel.path)
    one = _verify(tmp_path / "one.whl")["x/libx.so"]
    assert one == _verify(tmp_path / "two.whl")["x/libx.so"] == data


def test_generated_entries_equal_across_wheels_are_deflated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = _mixed(200_000, seed=4)
    counter = _Counter(monkeypatch)
    specs = [
        _spec(tmp_path / f"{n}.whl", FileEntry(arcname="x/data.bin", data=payload))
        for n in ("a", "b", "c")
    ]
    write_wheels(specs, jobs=2)
    assert len(payload) <= counter.fed < len(payload) + 2000
    for spec in specs:
        assert _verify(spec.path)["x/data.bin"] == payload


def test_progress_counts_every_entry_byte(tmp_path: Path, tree: dict[str, Path]) -> None:
    seen: list[int] = []
    entries = (*_entries(tree), FileEntry(arcname="demo/again", source=tree["big"]))
    spec = _spec(tmp_path / "demo.whl", *entries)
    write_wheels([spec], progress=seen.append)
    total = sum(
        len(e.data) if e.data is not None else os.path.getsize(e.source or "") for e in spec.entries
    )
    assert sum(seen) == total
    assert max(seen) <= CHUNK_SIZE * 3  # pieces (and one copied entry), not whole files


def test_rebuilding_over_an_existing_wheel_replaces_it(
    tmp_path: Path, tree: dict[str, Path]
) -> None:
    path = tmp_path / "demo.whl"
    path.write_bytes(b"old")
    write_wheels([_spec(path, *_entries(tree))])
    _verify(path)


def _fails(
    tmp_path: Path,
    specs: list[WheelSpec],
    match: str,
    *,
    progress: Callable[[int], None] | None = None,
    jobs: int = 2,
) -> WheelError:
    """Run a write that must fail; no temp file may stay, existing wheels stay untouched."""
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.whl")}
    with pytest.raises(WheelError, match=match) as caught:
        write_wheels(specs, progress=progress, jobs=jobs, compression_level=1)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.whl")} == before
    return caught.value


def test_missing_source_fails_before_writing(tmp_path: Path) -> None:
    (tmp_path / "demo.whl").write_bytes(b"previous build")
    spec = _spec(tmp_path / "demo.whl", FileEntry(arcname="x/a", source=tmp_path / "nope"))
    error = _fails(tmp_path, [spec], r"nope: source file does not exist")
    assert error.path == tmp_path / "nope"


def test_a_source_that_changes_mid_write_fails(tmp_path: Path, tree: dict[str, Path]) -> None:
    (tmp_path / "demo.whl").write_bytes(b"previous build")
    first = _spec(tmp_path / "a.whl", FileEntry(arcname="x/notes", source=tree["text"]))
    second = _spec(tmp_path / "demo.whl", *_entries(tree))

    def truncate(_done: int) -> None:
        os.truncate(tree["big"], 1000)

    error = _fails(tmp_path, [first, second], r"libbig\.so\.1: changed", progress=truncate)
    assert error.path == tree["big"]
    assert not (tmp_path / "a.whl").exists()  # complete wheels are only renamed at the end


def test_a_copied_source_that_changed_fails(tmp_path: Path, tree: dict[str, Path]) -> None:
    twin = FileEntry(arcname="z/libbig", source=tree["big"])  # copies demo/lib/libbig.so.1
    spec = _spec(tmp_path / "demo.whl", *_entries(tree), twin)
    size = tree["big"].stat().st_size
    done: list[int] = []

    def rewrite(count: int) -> None:
        done.append(count)
        if sum(done) >= size + 1000:  # the first occurrence is written, the copy is not
            os.utime(tree["big"], ns=(1, 1))

    _fails(tmp_path, [spec], r"libbig\.so\.1: changed while being written", progress=rewrite)


def test_a_source_that_disappears_mid_write_fails(tmp_path: Path) -> None:
    big = _file(tmp_path / "src" / "a.bin", _mixed(CHUNK_SIZE * 8 + 1, seed=5))
    victim = _file(tmp_path / "src" / "z.txt", b"soon gone")
    spec = _spec(
        tmp_path / "demo.whl",
        FileEntry(arcname="x/a.bin", source=big),
        FileEntry(arcname="x/z.txt", source=victim),
    )

    def delete(_done: int) -> None:
        victim.unlink(missing_ok=True)  # 9 pieces of a.bin go first; the window holds 4

    _fails(tmp_path, [spec], r"z\.txt: disappeared while being written into demo\.whl",
           progress=delete, jobs=1)  # fmt: skip


def test_any_exception_removes_temp_files(tmp_path: Path, tree: dict[str, Path]) -> None:
    class Stop(Exception):
        pass

    def stop(_done: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        write_wheels([_spec(tmp_path / "demo.whl", *_entries(tree))], progress=stop)
    assert list(tmp_path.glob("demo.whl*")) == []


@pytest.mark.parametrize(
    "arcname", ["/abs", "a//b", "a/./b", "../up", "a/..", "dir/", "a\\b", "", "bad\udcff"]
)
def test_bad_entry_names_are_refused(tmp_path: Path, arcname: str) -> None:
    spec = _spec(tmp_path / "demo.whl", FileEntry(arcname=arcname, data=b"x"))
    _fails(tmp_path, [spec], "bad entry name")


def test_plan_errors(tmp_path: Path) -> None:
    path = tmp_path / "demo.whl"
    twice = FileEntry(arcname="x/a", data=b"1")
    _fails(tmp_path, [_spec(path, twice, twice)], "listed twice")
    record = FileEntry(arcname=f"{DIST}/RECORD", data=b"")
    _fails(tmp_path, [_spec(path, record)], "RECORD is written by the wheel writer")
    _fails(tmp_path, [_spec(path, dist_info="demo-1.0")], "must be a NAME.dist-info")
    _fails(tmp_path, [_spec(path), _spec(path)], "listed twice in one write")
    (tmp_path / "dir").mkdir()
    _fails(tmp_path, [_spec(path, FileEntry(arcname="x/d", source=tmp_path / "dir"))], "regular")


def test_entries_need_exactly_one_of_source_and_data(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="exactly one"):
        FileEntry(arcname="a")
    with pytest.raises(WheelError, match="exactly one"):
        FileEntry(arcname="a", data=b"", source=tmp_path)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"compression_level": 10}, "compression_level"),
        ({"compression_level": -1}, "compression_level"),
        ({"jobs": 0}, "jobs"),
        ({"zip64_threshold": 0}, "zip64_threshold"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict[str, int], argument: str) -> None:
    with pytest.raises(UsageError, match=argument):
        write_wheels([_spec(tmp_path / "demo.whl")], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "version", "tag", "expected"),
    [
        ("rocm-sdk-core", "7.10.0.dev0", "py3-none-any",
         "rocm_sdk_core-7.10.0.dev0-py3-none-any.whl"),
        ("rocm-sdk-libraries-gfx120X-all", "7.10.0rc1", "py3-none-manylinux_2_28_x86_64",
         "rocm_sdk_libraries_gfx120x_all-7.10.0rc1-py3-none-manylinux_2_28_x86_64.whl"),
        ("Foo.Bar__baz", "1.0.0-RC1", "py3-none-any", "foo_bar_baz-1.0.0rc1-py3-none-any.whl"),
        ("x", "v2.0-post.1", "py3-none-any", "x-2.0.post1-py3-none-any.whl"),
    ],
)  # fmt: skip
def test_wheel_filename(name: str, version: str, tag: str, expected: str) -> None:
    assert wheel_filename(name, version, tag) == expected
    assert dist_info_name(name, version) == expected.split("-py3-")[0] + ".dist-info"


def test_wheel_filename_rejects_bad_versions_and_tags() -> None:
    with pytest.raises(VersionError, match="not a valid PEP 440"):
        wheel_filename("x", "seven", "py3-none-any")
    with pytest.raises(WheelError, match="python-abi-platform"):
        wheel_filename("x", "1.0", "py3-any")


@pytest.mark.slow
def test_a_file_over_4_gib_gets_zip64_and_streams(tmp_path: Path) -> None:
    size = (4 << 30) + (1 << 20) + 3
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as stream:
        stream.truncate(size)  # sparse: reads as zeros, takes no disk
    path = tmp_path / "big.whl"
    spec = _spec(
        path,
        FileEntry(arcname="big/huge.bin", source=huge),
        FileEntry(arcname="big/small.txt", data=b"after the big one\n"),
    )
    tracemalloc.start()
    try:
        (written,) = write_wheels([spec], compression_level=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 128 << 20  # a bounded window of pieces, not the file
    assert written.uncompressed_size > size
    zeros = hashlib.sha256()
    block = bytes(4 << 20)
    for _ in range(size // len(block)):
        zeros.update(block)
    zeros.update(bytes(size % len(block)))
    raw_header = path.read_bytes()[:200]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # inflates all 4 GiB and checks the CRC-32
        info = archive.getinfo("big/huge.bin")
        assert info.file_size == size
        assert info.compress_size < 1 << 32
        assert struct.unpack("<HHQ", info.extra) == (1, 8, size)  # only the field that needs it
        name_len, extra_len = struct.unpack("<HH", raw_header[26:30])
        assert struct.unpack("<HHQQ", raw_header[30 + name_len : 30 + name_len + extra_len]) == (
            1, 16, size, info.compress_size,
        )  # fmt: skip
        assert archive.read("big/small.txt") == b"after the big one\n"
        rows = dict(
            (row[0], row[1:])
            for row in csv.reader(io.StringIO(archive.read(f"{DIST}/RECORD").decode()))
        )
    digest = base64.urlsafe_b64encode(zeros.digest()).rstrip(b"=").decode()
    assert rows["big/huge.bin"] == [f"sha256={digest}", str(size)]
