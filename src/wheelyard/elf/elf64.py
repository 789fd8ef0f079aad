"""The ELF64 little-endian structures, constants and raw file I/O of the RUNPATH append."""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_DYN = 3
PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_PHDR = 6
PF_W = 2
PF_R = 4
PN_XNUM = 0xFFFF
SHT_NULL = 0
SHT_STRTAB = 3
SHT_DYNAMIC = 6
SHT_NOTE = 7
SHT_NOBITS = 8
SHF_ALLOC = 2
# Sections the grown program header table may displace: nothing refers to them but the dynamic
# array (by address) and other sections (by index); relocations never target them.
MOVABLE = frozenset(
    {
        SHT_NOTE,
        5,  # SHT_HASH
        11,  # SHT_DYNSYM
        0x6FFFFFF6,  # SHT_GNU_HASH
        0x6FFFFFFD,  # SHT_GNU_verdef
        0x6FFFFFFE,  # SHT_GNU_verneed
        0x6FFFFFFF,  # SHT_GNU_versym
    }
)
DT_NULL = 0
DT_STRTAB = 5
DT_STRSZ = 10
DT_RPATH = 15
DT_RUNPATH = 29
# Dynamic tags whose value is an address (d_ptr), and tags known to hold anything else (d_val).
D_PTR = frozenset(
    {3, 4, 5, 6, 7, 12, 13, 17, 21, 23, 25, 26, 32, 34, 36, 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFE}
)
D_PTR_RANGE = range(0x6FFFFE00, 0x6FFFFF00)  # DT_ADDRRNGLO..DT_ADDRRNGHI (DT_GNU_HASH, ...)
D_VAL = frozenset(
    {0, 1, 2, 8, 9, 10, 11, 14, 15, 16, 18, 19, 20, 22, 24, 27, 28, 29, 30, 33, 35, 37}
    | {0x6FFFFFF9, 0x6FFFFFFA, 0x6FFFFFFB, 0x6FFFFFFD, 0x6FFFFFFF, 0x7FFFFFFD, 0x7FFFFFFF}
)
D_VAL_RANGE = range(0x6FFFFD00, 0x6FFFFE00)  # DT_VALRNGLO..DT_VALRNGHI
SPARE_NULLS = 2  # beyond the terminator: room for a later edit to add an entry in place
PAGE = 4096  # the smallest page size the new segment is aligned to
MAX_FILE_ALIGN = 1 << 16  # pad the file to at most this much (64 KiB pages); the rest is vaddr
CHUNK = 1 << 20
ADDRESS_LIMIT = 1 << 64  # file offsets and addresses of the result must stay below this

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
SHDR = struct.Struct("<IIQQQQIIQQ")
DYN = struct.Struct("<qQ")
E_PHNUM = 56  # byte offset of the ELF64 header field patched in place


class Phdr(NamedTuple):
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


class Shdr(NamedTuple):
    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int


def round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def pread(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise EOFError(f"short read of {length} bytes at offset {offset:#x}")
    return data


def pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
