"""Make a complete raw deflate stream joinable: clear its final-block bit, end it on a byte.

libdeflate compresses a whole buffer into one raw deflate stream whose last block carries the
final-block bit (BFINAL), at a bit position it does not report. To join such streams the way
``Z_SYNC_FLUSH`` pieces are joined, :func:`unfinish` finds that position with zlib's own
inflate in ``Z_BLOCK`` mode (called through ctypes: it stops at every block boundary and tells
how many bits of the last input byte it has not used), clears the bit, and appends an empty
stored block, which ends the piece on a byte boundary exactly like a sync flush does.

The walk inflates the piece once, at about a fifth of libdeflate's own time at level 6, and
checks its structure and length along the way. The result depends only on the stream: the
zlib version that walks it never changes a byte.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

_Z_OK = 0
_Z_STREAM_END = 1
_Z_BLOCK = 5
_AT_BOUNDARY = 128  # data_type: stopped at a block boundary (before the next header)
_LAST_BLOCK = 64  # data_type: the block just decoded had BFINAL set
_BITS = 63  # data_type: bits taken from the input but not used yet
_EMPTY_STORED = b"\x00\x00\xff\xff"  # LEN 0 and its complement: what a sync flush writes


class JoinError(RuntimeError):
    """The stream is not what the compressor should have produced (a bug, not bad input)."""


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


class _Zlib:
    """The three inflate calls of the C zlib library, loaded once."""

    def __init__(self, library: ctypes.CDLL) -> None:
        version = library.zlibVersion
        version.restype = ctypes.c_char_p
        self.version: bytes = version()
        stream_p = ctypes.POINTER(_ZStream)
        self.init = library.inflateInit2_
        self.init.argtypes = [stream_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.inflate = library.inflate
        self.inflate.argtypes = [stream_p, ctypes.c_int]
        self.end = library.inflateEnd
        self.end.argtypes = [stream_p]


@functools.cache
def _zlib() -> _Zlib:
    """zlib's shared library; ``OSError`` when it cannot be loaded."""
    for name in ("libz.so.1", ctypes.util.find_library("z")):
        if name:
            try:
                return _Zlib(ctypes.CDLL(name))
            except (OSError, AttributeError):
                continue
    raise OSError("the zlib shared library (libz.so.1) cannot be loaded")


def available() -> str:
    """The version of the zlib that walks streams; ``OSError`` if there is none."""
    return _zlib().version.decode()


_buffers = threading.local()


def _out_buffer(size: int) -> ctypes.Array[ctypes.c_char]:
    """A per-thread output buffer of at least ``size`` bytes (inflate needs somewhere to go)."""
    buffer: ctypes.Array[ctypes.c_char] | None = getattr(_buffers, "out", None)
    if buffer is None or len(buffer) < size:
        buffer = ctypes.create_string_buffer(max(size, 1))
        _buffers.out = buffer
    return buffer


def final_block(stream: bytearray, size: int) -> tuple[int, int]:
    """(bit offset of the final block's header, bit offset just past its end) in ``stream``.

    ``stream`` must inflate to exactly ``size`` bytes; :class:`JoinError` otherwise.
    """
    zlib = _zlib()
    out = _out_buffer(size)
    z = _ZStream()
    source = (ctypes.c_char * len(stream)).from_buffer(stream)
    if zlib.init(ctypes.byref(z), -15, zlib.version, ctypes.sizeof(z)) != _Z_OK:
        raise JoinError("inflateInit2 failed")
    try:
        z.next_in = ctypes.addressof(source)
        z.avail_in = len(stream)
        z.next_out = ctypes.addressof(out)
        z.avail_out = size
        header = 0  # the first block starts the stream
        while True:
            code = zlib.inflate(ctypes.byref(z), _Z_BLOCK)
            if code not in (_Z_OK, _Z_STREAM_END) or not z.data_type & _AT_BOUNDARY:
                if code == _Z_OK and not z.avail_out:
                    raise JoinError(f"the stream inflates to more than {size} bytes")
                raise JoinError(f"inflate stopped inside a block (code {code})")
            position = 8 * z.total_in - (z.data_type & _BITS)
            if z.data_type & _LAST_BLOCK:
                break
            header = position
    finally:
        zlib.end(ctypes.byref(z))
        del source  # release the export of ``stream`` so that the caller may resize it
    if z.total_out != size:
        raise JoinError(f"the stream inflates to {z.total_out} bytes, not {size}")
    return header, position


def unfinish(stream: bytearray, size: int) -> bytearray:
    """Turn ``stream`` (``size`` bytes deflated, final block last) into a joinable piece.

    The final-block bit is cleared and an empty stored block is appended, so the piece ends
    on a byte boundary and the next piece's first block header starts the next byte.
    """
    header, end = final_block(stream, size)
    if (end + 7) // 8 != len(stream) or stream[-1] >> (end % 8 or 8):
        raise JoinError("the stream has bytes or bits after its final block")
    stream[header // 8] &= ~(1 << (header % 8)) & 0xFF
    spare = -end % 8  # zero bits left in the last byte: room for the 3-bit stored header
    if spare < 3:
        stream.append(0)
    stream += _EMPTY_STORED
    return stream
