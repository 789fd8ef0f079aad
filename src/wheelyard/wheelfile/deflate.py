"""Parallel raw deflate: pieces read, checksummed and compressed on threads, then joined.

A large file is cut into :data:`CHUNK_SIZE` pieces, each compressed on its own by a backend
(:mod:`wheelyard.wheelfile.backends`; zlib when none is given). Every piece except the last
ends on a byte boundary without the final-block bit; the last one ends the stream. With zlib
and ISA-L each piece's compressor is primed with the 32 KiB that precede it as a preset
dictionary, so matches across the cut are still found, and ``Z_SYNC_FLUSH`` ends it (the
approach of pigz); libdeflate pieces start cold and are made joinable afterwards
(:mod:`wheelyard.wheelfile.finalblock`). Concatenated in order, the pieces form one valid raw
deflate stream, and the bytes depend only on the input, the backend and level and
:data:`CHUNK_SIZE`, never on how many threads ran.

A :func:`compress_piece` job reads its piece once (:class:`PieceSource`) and computes from that
one read the piece's CRC-32, its deflate stream and its share of the SHA-256. The CRC-32 of the
whole is combined from the pieces' with :func:`crc32_combine`; the SHA-256, which cannot be
split, is fed piece by piece in order by :class:`OrderedHasher`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wheelyard.errors import WheelError

if TYPE_CHECKING:
    from wheelyard.wheelfile.backends import DeflateBackend

CHUNK_SIZE = 1 << 20
"""Bytes per piece. Changing it changes the compressed bytes (not their meaning)."""

WINDOW = 1 << 15
"""The deflate window: how much history primes the compressor of the next piece."""

_CRC32_POLY = 0xEDB88320  # CRC-32 polynomial, bit-reflected as zlib uses it
_READ_BLOCK = 4 << 20
_CHANGED_HINT = "do not modify the input files while wheels are being written; run again"

FileIdentity = tuple[int, int, int, int]
"""(st_dev, st_ino, st_size, st_mtime_ns): same identity, same bytes (barring sabotage)."""


class Compressor(Protocol):
    """The part of ``zlib.compressobj()`` that the writer uses."""

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


def new_compressor(level: int, history: bytes) -> Compressor:
    """A raw deflate compressor (no zlib header), primed with ``history`` when not empty."""
    if history:
        return zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, history)
    return zlib.compressobj(level, zlib.DEFLATED, -15)


def deflate_piece(data: bytes | memoryview, *, history: bytes, level: int, final: bool) -> bytes:
    """Compress one piece; ``history`` is the (up to 32 KiB) input just before it."""
    # Looked up at call time so that tests can count compressors by patching the module.
    compressor = new_compressor(level, history)
    head = compressor.compress(data)
    return head + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def deflate_whole(
    data: bytes, level: int, backend: DeflateBackend | None = None
) -> bytes | bytearray:
    """``data`` as one complete raw deflate stream, in one piece (for small entries)."""
    if backend is None:
        return deflate_piece(data, history=b"", level=level, final=True)
    return backend.deflate(data, history=b"", level=level, final=True)


def piece_count(size: int) -> int:
    """How many pieces a ``size``-byte input is cut into (at least one)."""
    return max(1, -(-size // CHUNK_SIZE))


def deflate_bound(size: int) -> int:
    """An upper bound for the compressed size of ``size`` bytes cut into pieces.

    zlib's own bound is about ``size + size/4096 + 13`` per stream; each piece adds a sync
    flush (at most ~10 bytes). The margin here is far larger than both.
    """
    return size + (size >> 10) + 128 * piece_count(size) + 64


def _apply(operator: tuple[int, ...], vector: int) -> int:
    """Multiply a 32x32 GF(2) matrix (one column per bit, as ints) by a 32-bit vector."""
    result = 0
    column = 0
    while vector:
        if vector & 1:
            result ^= operator[column]
        vector >>= 1
        column += 1
    return result


def _square(operator: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_apply(operator, column) for column in operator)


@functools.cache
def _zeros_operator(power: int) -> tuple[int, ...]:
    """The matrix that runs a CRC-32 register over ``2**power`` zero bytes."""
    if power == 0:
        # One zero bit: shift right, and fold in the polynomial if bit 0 was set.
        operator = (_CRC32_POLY, *(1 << (bit - 1) for bit in range(1, 32)))
        for _ in range(3):  # 1 bit -> 2 -> 4 -> 8 bits
            operator = _square(operator)
        return operator
    return _square(_zeros_operator(power - 1))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc1 = crc32(a)``, ``crc2 = crc32(b)`` and ``len2 = len(b)``.

    Appending ``b`` to ``a`` is, for the CRC register, the same as appending ``len(b)`` zero
    bytes and then xoring in the CRC of ``b`` (the pre- and post-inversions cancel). Running
    over zero bytes is linear, so it is a matrix over GF(2); the matrices for 2**k zero bytes
    are built by repeated squaring and cached, so a combine costs a few matrix-vector products.
    """
    if len2 < 0:
        raise ValueError(f"len2 must not be negative, got {len2}")
    power = 0
    while len2:
        if len2 & 1:
            crc1 = _apply(_zeros_operator(power), crc1)
        len2 >>= 1
        power += 1
    return crc1 ^ crc2


class OrderedHasher:
    """SHA-256 of pieces that arrive in any order from any thread, hashed in order.

    The thread that hands in the next expected piece hashes it, and then any later pieces that
    are already waiting; threads that hand in a piece early just park it. Nobody blocks. Once
    every piece's :meth:`feed` call has returned, :meth:`digest` is final; :meth:`wait_digest`
    waits for that from another thread.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting: dict[int, bytes | memoryview] = {}
        self._next = 0
        self._busy = False
        self._failed = False

    def feed(self, index: int, data: bytes | memoryview) -> None:
        with self._lock:
            self._waiting[index] = data
            if self._busy:
                return  # the thread hashing now will pick this piece up
            self._busy = True
        while True:
            with self._lock:
                piece = self._waiting.pop(self._next, None)
                if piece is None:
                    self._busy = False
                    self._idle.notify_all()
                    return
                self._next += 1
            self._hash.update(piece)  # releases the GIL; other pieces keep arriving

    @property
    def pieces_hashed(self) -> int:
        with self._lock:
            return self._next

    def digest(self) -> bytes:
        return self._hash.digest()

    def fail(self) -> None:
        """A piece will never come: wake :meth:`wait_digest` callers."""
        with self._lock:
            self._failed = True
            self._idle.notify_all()

    def wait_digest(self, pieces: int) -> bytes | None:
        """The digest once ``pieces`` pieces are hashed; None if one of them failed."""
        with self._idle:
            self._idle.wait_for(lambda: self._failed or (self._next >= pieces and not self._busy))
            return None if self._failed else self._hash.digest()


class PieceSource:
    """The bytes of one entry, read by piece jobs: in-memory ``data`` or a file at ``path``.

    A file of several pieces is opened once and shared (``os.pread`` has no file position);
    a one-piece file is opened by its job. A file whose identity differs from the one it had
    when planned, that ends early, or that grew, raises :class:`WheelError`. ``target`` (the
    wheel being written) is named in those messages.
    """

    def __init__(
        self,
        *,
        size: int,
        data: bytes | None = None,
        path: Path | None = None,
        identity: FileIdentity | None = None,
        target: str = "",
    ) -> None:
        self.size = size
        self.data = data
        self.path = path
        self.identity = identity
        self.target = target
        self.hasher = OrderedHasher()
        self.pieces = piece_count(size)
        self._fd = self._open() if path is not None and self.pieces > 1 else None

    @property
    def holds_fd(self) -> bool:
        return self._fd is not None

    def read(self, offset: int, length: int) -> bytes | memoryview:
        if self.data is not None:
            return memoryview(self.data)[offset : offset + length]
        if self._fd is not None:
            return self._pread(self._fd, offset, length)
        fd = self._open()  # a one-piece file: read it whole, plus one byte to notice growth
        try:
            data = self._pread(fd, offset, length + 1, exact=False)
        finally:
            os.close(fd)
        if len(data) != length:
            raise self.changed_error()
        return data

    def close(self, *, check: bool = False) -> None:
        """Close the shared descriptor; with ``check``, fail if the file changed meanwhile."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if check and file_identity(os.fstat(fd)) != self.identity:
                    raise self.changed_error()
            finally:
                os.close(fd)

    def changed_error(self, what: str = "changed") -> WheelError:
        return WheelError(
            self.path or "<data>", f"{what} while being written into {self.target}",
            hint=_CHANGED_HINT,
        )  # fmt: skip

    def _open(self) -> int:
        assert self.path is not None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise self.changed_error("disappeared") from None
        except OSError as exc:
            raise WheelError(self.path, f"cannot read: {exc.strerror}") from exc
        if file_identity(os.fstat(fd)) != self.identity:
            os.close(fd)
            raise self.changed_error()
        return fd

    def _pread(self, fd: int, offset: int, length: int, *, exact: bool = True) -> bytes:
        parts = []
        while length:
            try:
                part = os.pread(fd, length, offset)
            except OSError as exc:
                raise WheelError(self.path or "<data>", f"cannot read: {exc.strerror}") from exc
            if not part:
                break
            parts.append(part)
            offset += len(part)
            length -= len(part)
        if exact and length:
            raise self.changed_error()
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass(frozen=True, kw_only=True)
class Piece:
    data: bytes | bytearray | memoryview  # deflated (or, at level 0, stored) bytes
    crc: int
    size: int


def compress_piece(
    source: PieceSource, index: int, level: int, backend: DeflateBackend | None = None
) -> Piece:
    """Read, CRC, deflate (level 0: store) and hash piece ``index`` of ``source``."""
    try:
        return _compress_piece(source, index, level, backend)
    except BaseException:
        source.hasher.fail()
        raise


def _compress_piece(
    source: PieceSource, index: int, level: int, backend: DeflateBackend | None
) -> Piece:
    offset = index * CHUNK_SIZE
    length = min(CHUNK_SIZE, source.size - offset)
    primed = level and (backend is None or backend.uses_history)
    history = min(WINDOW, offset) if primed else 0
    block = source.read(offset - history, length + history)
    raw = memoryview(block)[history:] if history else block
    crc = zlib.crc32(raw)
    data: bytes | bytearray | memoryview = raw
    if level:
        final = index == source.pieces - 1
        prior = bytes(memoryview(block)[:history])
        if backend is None:
            data = deflate_piece(raw, history=prior, level=level, final=final)
        else:
            data = backend.deflate(raw, history=prior, level=level, final=final)
    source.hasher.feed(index, raw)
    return Piece(data=data, crc=crc, size=length)


def file_identity(st: os.stat_result) -> FileIdentity:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_unchanged(path: Path, identity: FileIdentity | None, *, target: str) -> None:
    """Fail unless ``path`` still has the identity it had when planned."""
    try:
        now: FileIdentity | None = file_identity(path.stat())
    except FileNotFoundError:
        now = None
    if now != identity:
        what = "disappeared" if now is None else "changed"
        raise WheelError(path, f"{what} while being written into {target}", hint=_CHANGED_HINT)
