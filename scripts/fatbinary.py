"""Synthetic GPU fat-binary bytes for the benchmarks: deflate behaves as on the real thing.

``fat_binary(size, seed)`` is deterministic for a given seed. Nothing here is imported by
wheelyard.
"""

from __future__ import annotations

import itertools
import random
import struct

MIB = 1 << 20
_MASTER = 32 * MIB  # generated once per seed; longer outputs are rotations of it


class FatBinary:
    """Bytes that deflate like the code objects of a GPU fat binary.

    Calibrated on a real 1.31 GB librocsparse (Debian's librocsparse0 5.3.0): zlib 6 ratio
    about 0.2, libdeflate 6 slightly smaller than zlib 6, zlib-ng 6 about 5% larger, ISA-L
    and zlib 1 10-25% larger, and little lost by compressing 1 MiB pieces without history.
    Kernels are basic blocks of 32/64-bit instruction words (a skewed opcode mix with register
    and immediate fields), loops unrolled with stepped registers, template instances side by
    side with sparse differences, 256-byte alignment, kernel descriptors, metadata notes and
    mangled symbol names.
    """

    def __init__(self, seed: int) -> None:
        rng = self._rng = random.Random(seed)
        opcodes = [rng.getrandbits(32) & 0xFFFF0000 | rng.getrandbits(9) for _ in range(600)]
        weights = list(itertools.accumulate(1 / (i + 1) ** 1.1 for i in range(len(opcodes))))
        self._opcodes, self._opcode_weights = opcodes, weights
        self._blocks = [self._instructions(rng.randrange(6, 48)) for _ in range(3000)]
        self._block_weights = list(
            itertools.accumulate(1 / (i + 1) ** 1.1 for i in range(len(self._blocks)))
        )
        self._names = [self._mangled() for _ in range(400)]

    def generate(self, size: int) -> bytes:
        """``size`` bytes: code objects of 256 KiB to 2 MiB, as in an offload bundle."""
        out = bytearray()
        while len(out) < size:
            out += b"__CLANG_OFFLOAD_BUNDLE__" + struct.pack("<Q", len(out))
            out += self._code_object(self._rng.randrange(256 << 10, 2 << 20))
            out += bytes(-len(out) % 4096)
        return bytes(out[:size])

    def _instructions(self, count: int) -> bytes:
        rng = self._rng
        out = bytearray()
        for op in rng.choices(self._opcodes, cum_weights=self._opcode_weights, k=count):
            fields = (int(rng.expovariate(0.15)) & 0xFF) << 8 | int(rng.expovariate(0.2)) & 0xFF
            out += struct.pack("<I", op ^ fields)
            if op & 0x100:  # a 64-bit encoding: a second dword of operands
                out += struct.pack("<I", (int(rng.expovariate(0.05)) & 0x1FF) | op >> 16 << 16)
            if rng.random() < 0.04:  # a literal constant
                literal = rng.choice((0, 1, 4, 16, 64, 0x3F800000, rng.getrandbits(32)))
                out += struct.pack("<I", literal)
        return bytes(out)

    def _unrolled(self, block: bytes, copies: int) -> bytes:
        """A loop body repeated, with some register fields stepped in each copy."""
        rng = self._rng
        registers = [i for i in range(0, len(block) - 3, 4) if rng.random() < 0.4]
        step = rng.choice((1, 2, 4))
        out = bytearray()
        for copy in range(copies):
            body = bytearray(block)
            for i in registers:
                body[i] = (body[i] + copy * step) & 0xFF
            out += body
        return bytes(out)

    def _kernel(self) -> bytes:
        rng = self._rng
        body = bytearray()
        target = rng.randrange(1024, 8192)
        while len(body) < target:
            (block,) = rng.choices(self._blocks, cum_weights=self._block_weights)
            body += self._unrolled(block, rng.randrange(2, 9)) if rng.random() < 0.8 else block
        return bytes(body)

    def _variant(self, kernel: bytes) -> bytes:
        """Another template instance: the same code with a few fields changed."""
        rng = self._rng
        out = bytearray(kernel)
        at = rng.randrange(300)
        while at < len(out) - 4:
            out[at : at + 4] = rng.randbytes(4)
            at += rng.randrange(75, 600)
        return bytes(out)

    def _mangled(self) -> bytes:
        rng = self._rng
        parts = (
            b"csrmv",
            b"bsrmv",
            b"coomv",
            b"spmm",
            b"gemmi",
            b"kernel",
            b"general",
            b"adaptive",
            b"lrb",
            b"ell",
            b"hyb",
            b"transpose",
            b"nnz",
            b"scan",
        )
        name = b"_ZN9rocsparse" + b"".join(
            b"%d%s" % (len(p), p) for p in rng.sample(parts, rng.randrange(2, 5))
        )
        name += b"ILj%dELj%dE" % (rng.choice((64, 128, 256, 512)), rng.choice((1, 4, 16, 64)))
        name += rng.choice((b"iffEEvT_", b"ldd", b"i21rocsparse_complex_numIfE", b"lPKdPd"))
        return name + b"PKT0_S3_" * rng.randrange(1, 3) + b"E"

    def _metadata(self, name: bytes) -> bytes:
        rng = self._rng
        out = bytearray(b"\x82\xa4.name\xd9%c%s" % (len(name), name))
        for i in range(rng.randrange(3, 16)):
            kind = rng.choice((b"global_buffer", b"by_value", b"hidden_block_count_x"))
            out += b"\x84\xa7.offset%c\xa5.size\x08\xab.value_kind\xd9%c%s" % (
                8 * i,
                len(kind),
                kind,
            )
        out += b"\xb4.kernarg_segment_size" + struct.pack("<H", rng.randrange(8, 400))
        return bytes(out)

    def _code_object(self, size: int) -> bytes:
        rng = self._rng
        text, notes, strtab = bytearray(), bytearray(), bytearray()
        while len(text) < size * 0.8:
            kernel, name = self._kernel(), rng.choice(self._names)
            for instance in range(rng.randrange(1, 3)):
                text += self._variant(kernel) if instance else kernel
                text += bytes(-len(text) % 256)
                symbol = b"%s_%d" % (name, instance)
                notes += self._metadata(symbol)
                strtab += symbol + b"\0"
                text += struct.pack("<IIQ", rng.randrange(1 << 12), 0, len(text)) + bytes(48)
        out = bytearray(b"\x7fELF\x02\x01\x01\x40" + bytes(56)) + text + bytes(-len(text) % 4096)
        out += notes + bytes(-len(notes) % 8) + strtab
        for i in range(len(strtab) // 40):
            out += struct.pack("<IBBHQQ", i * 40, 0x12, 0, 7, i * 4096, rng.randrange(1 << 14))
        return bytes(out)


def fat_binary(size: int, seed: int) -> bytes:
    """``size`` bytes of :class:`FatBinary` output: rotations of one generated master."""
    master = FatBinary(seed).generate(min(size, _MASTER))
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        cut = rng.randrange(len(master)) if total else 0
        parts.append(master[cut:] + master[:cut])
        total += len(master)
    return b"".join(parts)[:size]
