"""Parallel deflate pieces, backends and presets, CRC-32 combination and in-order hashing."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import random
import shutil
import subprocess
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import PROFILE, REPO, SAMPLE

from wheelyard.build import BuildOptions, build
from wheelyard.errors import UsageError, WheelError
from wheelyard.report import Reporter
from wheelyard.wheelfile import (
    PRESETS,
    FileEntry,
    WheelSpec,
    choose_compression,
    dedup,
    deflate,
    finalblock,
    write_wheels,
)
from wheelyard.wheelfile.backends import DeflateBackend, load_backend
from wheelyard.wheelfile.deflate import (
    CHUNK_SIZE,
    WINDOW,
    OrderedHasher,
    PieceSource,
    compress_piece,
    crc32_combine,
    deflate_bound,
    file_identity,
    piece_count,
)
from wheelyard.wheelfile.digest import hash_file


def _mixed(size: int, seed: int = 1) -> bytes:
    """Half random, half repetitive text: both deflate paths get exercised."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(20_000)
        out += b"".join(b"line %d of some text\n" % rng.randrange(100) for _ in range(1000))
    return bytes(out[:size])


def _source(path: Path, *, target: str = "demo.whl") -> PieceSource:
    st = path.stat()
    return PieceSource(size=st.st_size, path=path, identity=file_identity(st), target=target)


@pytest.mark.parametrize(
    ("len1", "len2"),
    [(0, 0), (0, 5), (5, 0), (1, 1), (3, 1000), (1000, 3), (123_457, 1 << 20), (7, 3_000_001)],
)
def test_crc32_combine_equals_crc_of_concatenation(len1: int, len2: int) -> None:
    rng = random.Random(len1 * 31 + len2)
    a, b = rng.randbytes(len1), rng.randbytes(len2)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_folds_many_pieces() -> None:
    data = _mixed(300_000, seed=7)
    cuts = [0, 1, 2, 4096, 65_535, 65_536, 200_001, len(data)]
    crc = 0
    for start, end in zip(cuts, cuts[1:], strict=False):
        crc = crc32_combine(crc, zlib.crc32(data[start:end]), end - start)
    assert crc == zlib.crc32(data)


def test_crc32_combine_rejects_negative_length() -> None:
    with pytest.raises(ValueError, match="negative"):
        crc32_combine(0, 0, -1)


def test_piece_count_and_bound() -> None:
    assert piece_count(0) == 1
    assert piece_count(CHUNK_SIZE) == 1
    assert piece_count(CHUNK_SIZE + 1) == 2
    data = os.urandom(CHUNK_SIZE * 2 + 17)  # incompressible: deflate expands it a little
    compressed = b"".join(
        compress_piece(PieceSource(size=len(data), data=data), i, 9).data
        for i in range(piece_count(len(data)))
    )
    assert len(data) < len(compressed) <= deflate_bound(len(data))


@pytest.mark.parametrize("level", [1, 6, 9])
def test_pieces_join_into_one_raw_deflate_stream(level: int) -> None:
    data = _mixed(CHUNK_SIZE * 3 + 12_345)
    source = PieceSource(size=len(data), data=data)
    pieces = [compress_piece(source, i, level) for i in range(source.pieces)]
    assert source.pieces == 4
    assert [p.size for p in pieces] == [CHUNK_SIZE] * 3 + [12_345]
    stream = b"".join(bytes(p.data) for p in pieces)
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(stream) == data
    assert inflater.eof  # exactly one final block, at the very end
    assert inflater.unused_data == b""
    crc = 0
    for piece in pieces:
        crc = crc32_combine(crc, piece.crc, piece.size)
    assert crc == zlib.crc32(data)
    assert source.hasher.digest() == hashlib.sha256(data).digest()


def test_each_piece_is_primed_with_the_previous_window() -> None:
    block = random.Random(3).randbytes(16 << 10)  # repeats well within the 32 KiB window
    data = block * (CHUNK_SIZE * 2 // len(block))
    source = PieceSource(size=len(data), data=data)
    primed = compress_piece(source, 1, 6).data
    unprimed = zlib.compressobj(6, zlib.DEFLATED, -15)
    alone = unprimed.compress(data[CHUNK_SIZE:]) + unprimed.flush(zlib.Z_SYNC_FLUSH)
    # Primed with the tail of piece 0, piece 1 is all back-references; alone, it has to spell
    # out its first 16 KiB as literals.
    assert len(primed) + 15_000 < len(alone)


def test_level_zero_stores_pieces() -> None:
    data = _mixed(CHUNK_SIZE + 10)
    source = PieceSource(size=len(data), data=data)
    pieces = [compress_piece(source, i, 0) for i in range(source.pieces)]
    assert b"".join(bytes(p.data) for p in pieces) == data


def test_pieces_in_parallel_give_the_same_bytes_as_in_sequence() -> None:
    data = _mixed(CHUNK_SIZE * 5 + 1)
    source = PieceSource(size=len(data), data=data)
    sequential = [bytes(compress_piece(source, i, 6).data) for i in range(source.pieces)]
    parallel_source = PieceSource(size=len(data), data=data)
    with ThreadPoolExecutor(4) as pool:
        order = list(reversed(range(parallel_source.pieces)))
        futures = {i: pool.submit(compress_piece, parallel_source, i, 6) for i in order}
        parallel = [bytes(futures[i].result().data) for i in range(parallel_source.pieces)]
    assert parallel == sequential
    assert parallel_source.hasher.digest() == hashlib.sha256(data).digest()


def test_ordered_hasher_takes_pieces_in_any_order_from_any_thread() -> None:
    pieces = [os.urandom(random.Random(i).randrange(1, 50_000)) for i in range(200)]
    hasher = OrderedHasher()
    order = list(range(len(pieces)))
    random.Random(5).shuffle(order)
    barrier = threading.Barrier(8)

    def feed(indices: list[int]) -> None:
        barrier.wait()
        for index in indices:
            hasher.feed(index, pieces[index])

    threads = [threading.Thread(target=feed, args=(order[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hasher.pieces_hashed == len(pieces)
    assert hasher.digest() == hashlib.sha256(b"".join(pieces)).digest()


def test_new_compressor_is_looked_up_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = deflate.new_compressor

    def counting(level: int, history: bytes) -> deflate.Compressor:
        calls.append(level)
        return real(level, history)

    monkeypatch.setattr(deflate, "new_compressor", counting)
    deflate.deflate_piece(b"abc", history=b"", level=5, final=True)
    assert calls == [5]


def test_file_pieces_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = _mixed(CHUNK_SIZE * 2 + 5)
    path.write_bytes(data)
    source = _source(path)
    assert source.holds_fd
    stream = b"".join(bytes(compress_piece(source, i, 6).data) for i in range(source.pieces))
    source.close(check=True)
    assert not source.holds_fd
    assert zlib.decompress(stream, -15) == data
    assert source.hasher.digest() == hashlib.sha256(data).digest()
    assert hash_file(path) == (hashlib.sha256(data).hexdigest(), len(data))


def test_a_file_that_shrinks_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(_mixed(CHUNK_SIZE * 2 + 5))
    source = _source(path)
    os.truncate(path, CHUNK_SIZE)
    with pytest.raises(WheelError, match=r"lib\.so: changed while being written into demo\.whl"):
        compress_piece(source, 1, 6)
    source.close()


def test_a_small_file_that_grows_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"hello")
    source = _source(path)
    with open(path, "ab") as stream:
        stream.write(b" world")
    with pytest.raises(WheelError, match=r"small\.txt: changed"):
        compress_piece(source, 0, 6)


def test_a_small_file_that_disappears_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    path.write_bytes(b"hello")
    source = _source(path)
    path.unlink()
    with pytest.raises(WheelError, match=r"gone\.txt: disappeared while being written"):
        compress_piece(source, 0, 6)


def test_closing_with_check_notices_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(_mixed(CHUNK_SIZE + 5))
    source = _source(path)
    with open(path, "ab") as stream:
        stream.write(b"more")
    with pytest.raises(WheelError, match="changed"):
        source.close(check=True)
    assert not source.holds_fd


# --- backends -----------------------------------------------------------------------------

_FINAL_EMPTY = b"\x01\x00\x00\xff\xff"  # an empty stored block with BFINAL set


def _backend(name: str) -> DeflateBackend:
    return load_backend(name)


@pytest.mark.parametrize(
    ("name", "level"), [("zlib", 6), ("isal", 1), ("isal", 3), ("libdeflate", 1), ("libdeflate", 6)]
)
def test_backend_pieces_join_into_one_raw_deflate_stream(name: str, level: int) -> None:
    data = _mixed(CHUNK_SIZE * 3 + 12_345, seed=11)
    source = PieceSource(size=len(data), data=data)
    backend = _backend(name)
    pieces = [compress_piece(source, i, level, backend) for i in range(source.pieces)]
    stream = b"".join(bytes(p.data) for p in pieces)
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(stream) == data
    assert inflater.eof
    assert inflater.unused_data == b""
    for piece in pieces[:-1]:  # each ends like a sync flush: on a byte, an empty stored block
        assert bytes(piece.data).endswith(b"\x00\x00\xff\xff")
    assert len(stream) <= deflate_bound(len(data))
    crc = 0
    for piece in pieces:
        crc = crc32_combine(crc, piece.crc, piece.size)
    assert crc == zlib.crc32(data)
    assert source.hasher.digest() == hashlib.sha256(data).digest()


def test_pieces_of_different_backends_still_join() -> None:
    data = _mixed(CHUNK_SIZE * 2 + 99, seed=12)
    view = memoryview(data)
    first = _backend("libdeflate").deflate(view[:CHUNK_SIZE], history=b"", level=6, final=False)
    second = _backend("isal").deflate(
        view[CHUNK_SIZE : 2 * CHUNK_SIZE], history=data[CHUNK_SIZE - WINDOW : CHUNK_SIZE],
        level=2, final=False,
    )  # fmt: skip
    last = _backend("zlib").deflate(view[2 * CHUNK_SIZE :], history=b"", level=1, final=True)
    assert zlib.decompress(bytes(first) + bytes(second) + bytes(last), -15) == data


def test_unfinish_handles_every_end_bit_position() -> None:
    rng = random.Random(13)
    libdeflate = _backend("libdeflate")
    spare_bits = set()
    for size in [*range(1, 120), *rng.sample(range(120, 40_000), 60)]:
        data = _mixed(size, seed=size)
        stream = bytearray(libdeflate.module.deflate_compress(data, rng.choice((1, 6, 9))))
        header, end = finalblock.final_block(stream, len(data))
        assert stream[header // 8] >> (header % 8) & 1  # the BFINAL bit
        spare_bits.add(-end % 8)
        joinable = finalblock.unfinish(stream, len(data))
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(bytes(joinable) + _FINAL_EMPTY) == data
        assert inflater.eof
        assert inflater.unused_data == b""
    assert spare_bits == set(range(8))  # both ways of appending the stored block were used


def test_final_block_rejects_what_is_not_the_piece() -> None:
    data = _mixed(50_000, seed=14)
    stream = bytearray(_backend("libdeflate").module.deflate_compress(data, 6))
    with pytest.raises(finalblock.JoinError, match="inflates to more than 49999 bytes"):
        finalblock.final_block(stream, len(data) - 1)
    with pytest.raises(finalblock.JoinError, match="inflates to 50000 bytes, not 50001"):
        finalblock.final_block(stream, len(data) + 1)
    with pytest.raises(finalblock.JoinError, match="inflate stopped"):
        finalblock.final_block(bytearray(b"\xff" * 64), 64)
    with pytest.raises(finalblock.JoinError, match="after its final block"):
        finalblock.unfinish(stream + b"\x00", len(data))


def _files(tmp_path: Path) -> list[FileEntry]:
    big = tmp_path / "libbig.so"
    big.write_bytes(_mixed(CHUNK_SIZE * 3 + 777, seed=15))
    twin = tmp_path / "twin" / "libbig.so"
    twin.parent.mkdir()
    twin.write_bytes(big.read_bytes())
    small = tmp_path / "notes.txt"
    small.write_bytes(b"notes\n" * 5000)
    return [
        FileEntry(arcname="demo/lib/libbig.so", source=big),
        FileEntry(arcname="demo/lib/twin.so", source=twin),
        FileEntry(arcname="demo/notes.txt", source=small),
        FileEntry(arcname="demo/data.json", data=b'{"x": 1}\n' * 100),
    ]


@pytest.mark.parametrize("name", ["libdeflate", "isal"])
def test_same_bytes_for_jobs_one_and_two_and_on_rebuild(tmp_path: Path, name: str) -> None:
    entries = tuple(_files(tmp_path))
    backend = _backend(name)
    written = []
    level = min(6, backend.max_level)
    for run, jobs in enumerate((1, 2, 2)):
        path = tmp_path / f"run{run}" / "demo-1.0-py3-none-any.whl"
        spec = WheelSpec(path=path, dist_info="demo-1.0.dist-info", entries=entries)
        written += write_wheels([spec], jobs=jobs, backend=backend, compression_level=level)
    first = written[0].path.read_bytes()
    assert all(w.path.read_bytes() == first for w in written[1:])
    with zipfile.ZipFile(written[0].path) as archive:
        assert archive.testzip() is None
        assert archive.read("demo/lib/twin.so") == (tmp_path / "libbig.so").read_bytes()
    unzip = shutil.which("unzip")
    if unzip:
        subprocess.run([unzip, "-tq", str(written[0].path)], check=True, capture_output=True)


def test_write_wheels_checks_the_level_against_the_backend(tmp_path: Path) -> None:
    spec = WheelSpec(path=tmp_path / "d-1-py3-none-any.whl", dist_info="d-1.dist-info", entries=())
    with pytest.raises(UsageError, match=r"compression_level.*0\.\.3, got 4"):
        write_wheels([spec], backend=_backend("isal"), compression_level=4)
    (written,) = write_wheels([spec], backend=_backend("libdeflate"), compression_level=12)
    assert zipfile.ZipFile(written.path).namelist() == ["d-1.dist-info/RECORD"]


# --- presets ------------------------------------------------------------------------------


def test_presets_pick_backend_and_level() -> None:
    warnings: list[str] = []
    chosen = {p: choose_compression(p, warn=warnings.append) for p in PRESETS}
    assert {p: (c.backend.name, c.level) for p, c in chosen.items()} == {
        "fast": ("isal", 1), "default": ("libdeflate", 6), "small": ("libdeflate", 9),
        "zlib": ("zlib", 6),
    }  # fmt: skip
    assert warnings == []
    assert chosen["default"].describe() == {
        "preset": "default", "backend": "libdeflate", "level": 6,
        "backend_version": f"deflate {importlib.metadata.version('deflate')}",
    }  # fmt: skip
    assert choose_compression("small", 12, warn=warnings.append).level == 12
    assert choose_compression("default", 0, warn=warnings.append).level == 0


@pytest.mark.parametrize(
    ("preset", "level", "message"),
    [
        ("tiny", None, "unknown preset 'tiny'; choose one of fast, default, small, zlib"),
        ("fast", 4, r"must be 0\.\.3 for --compression fast \(isal\), not 4"),
        ("default", 13, r"must be 0\.\.12 for --compression default \(libdeflate\), not 13"),
        ("zlib", -1, r"must be 0\.\.9"),
    ],
)
def test_bad_compression_choices(preset: str, level: int | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        choose_compression(preset, level, warn=lambda _text: None)


@pytest.mark.parametrize(("preset", "level", "expected"), [("default", None, 6), ("small", 12, 9)])
def test_a_missing_backend_falls_back_to_zlib_with_a_warning(
    preset: str, level: int | None, expected: int
) -> None:
    def importer(name: str) -> ModuleType:
        if name == "deflate":
            raise ModuleNotFoundError("No module named 'deflate'")
        return importlib.import_module(name)

    warnings: list[str] = []
    chosen = choose_compression(preset, level, warn=warnings.append, importer=importer)
    assert (chosen.backend.name, chosen.level) == ("zlib", expected)
    assert warnings == [
        f"compression backend libdeflate is not available (No module named 'deflate'); using "
        f"zlib level {expected} instead (pip install deflate to get it back)"
    ]


def test_build_manifest_records_the_backend(tmp_path: Path) -> None:
    stream = io.StringIO()
    options = BuildOptions(
        families=("gfx120X-all",), artifacts=SAMPLE, out=tmp_path / "out", profile=PROFILE,
        jobs=2, compression="fast",
    )  # fmt: skip
    build(options, reporter=Reporter(stream=stream, out=io.StringIO(), quiet=True))
    manifest = json.loads((tmp_path / "out" / "build-manifest.json").read_text())
    assert manifest["compression"] == {
        "preset": "fast", "backend": "isal", "level": 1,
        "backend_version": f"isal {importlib.metadata.version('isal')} (ISA-L "
        f"{importlib.import_module('isal').ISAL_VERSION})",
    }  # fmt: skip


def test_synthetic_fat_binary_deflates_like_one() -> None:
    spec = importlib.util.spec_from_file_location("fatbinary", REPO / "scripts" / "fatbinary.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.fat_binary(4 << 20, seed=1)
    assert data == module.fat_binary(4 << 20, seed=1)
    assert 0.15 <= len(zlib.compress(data, 6)) / len(data) <= 0.25


# --- dedup --------------------------------------------------------------------------------


def test_equal_files_are_read_once_and_hashed_alongside_deflate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = _mixed(CHUNK_SIZE + 5000, seed=16), _mixed(CHUNK_SIZE + 5000, seed=17)
    paths = {}
    for name, data in (("a", one), ("b", one), ("c", other), ("d", other)):
        paths[name] = tmp_path / "src" / name / "lib.so"
        paths[name].parent.mkdir(parents=True)
        paths[name].write_bytes(data)
    hashed: list[Path] = []
    real_hash = dedup.hash_file
    monkeypatch.setattr(dedup, "hash_file", lambda path: hashed.append(path) or real_hash(path))
    fed = []
    real_compressor = deflate.new_compressor

    def counting(level: int, history: bytes) -> deflate.Compressor:
        compressor = real_compressor(level, history)
        return type("Counting", (), {
            "compress": lambda _self, data: fed.append(len(data)) or compressor.compress(data),
            "flush": lambda _self, mode: compressor.flush(mode),
        })()  # fmt: skip

    monkeypatch.setattr(deflate, "new_compressor", counting)
    entries = tuple(FileEntry(arcname=f"x/{n}.so", source=p) for n, p in paths.items())
    spec = WheelSpec(
        path=tmp_path / "x-1-py3-none-any.whl", dist_info="x-1.dist-info", entries=entries
    )
    (written,) = write_wheels([spec], jobs=2)
    # The first of the size group is only compressed (its digest comes from that read); each
    # later one is hashed once; c differs from a, so it is compressed too, and d copies c.
    assert sorted(hashed) == [paths["b"], paths["c"], paths["d"]]
    assert 2 * len(one) <= sum(fed) < 2 * len(one) + 2000
    with zipfile.ZipFile(written.path) as archive:
        assert archive.testzip() is None
        contents = {n: archive.read(f"x/{n}.so") for n in "abcd"}
    assert contents == {"a": one, "b": one, "c": other, "d": other}
