"""Parallel deflate pieces, CRC-32 combination and in-order hashing."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wheelyard.errors import WheelError
from wheelyard.wheelfile import deflate
from wheelyard.wheelfile.deflate import (
    CHUNK_SIZE,
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
