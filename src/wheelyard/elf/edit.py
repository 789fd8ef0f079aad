"""Give a shared library a new RUNPATH by appending to it, without reading the whole file.

A new RUNPATH string needs room in the dynamic string table, and the table cannot grow where it
is. patchelf solves this by rewriting the whole file in memory (twice the file's size for a
library, 661 MiB for a 330 MiB one). :func:`append_runpath` does what patchelf does for shared
libraries, but by streaming. It appends to the end of the file one new read-write PT_LOAD (glibc
writes relocated addresses into the dynamic array), placed above every segment's end and
congruent to its file offset modulo the largest PT_LOAD alignment, holding

- the sections the program header table grows over (below), copied as one range that keeps
  their alignment,
- a copy of ``.dynstr`` followed by the new RUNPATH string,
- a new dynamic array (8-aligned): the old entries without DT_RPATH/DT_RUNPATH, DT_STRTAB and
  DT_STRSZ pointing at the new string table, addresses in the moved sections moved with them,
  one DT_RUNPATH, then DT_NULL and two spare DT_NULLs.

The program header table stays where it is, at the start of the first PT_LOAD, where GNU
``strip``/``objcopy`` expect it (they mangle a library whose table was moved elsewhere). It grows
in place by the new PT_LOAD, inserted right after the last PT_LOAD so PT_LOAD entries stay sorted
by address, with PT_DYNAMIC pointing at the new array. The first sections after the table
(``.note.*``, ``.gnu.hash``, ``.dynsym``, ...) are in the way: every section starting before the
end of the grown table plus room for ``2 + (note sections)`` more entries moves to the new
segment, with its section header, the dynamic entries holding its address (DT_GNU_HASH,
DT_SYMTAB, ...) and the program headers lying inside it (PT_NOTE, PT_GNU_PROPERTY). The room is
for patchelf: run on the result, it puts its own table there with one more PT_LOAD and up to one
PT_NOTE per note section, and moves only the sections that come first in section header order,
which no longer follows file order. The moved sections' old bytes are overwritten by the table
and zeros; the first PT_LOAD still covers them. The old string table and dynamic array stay where
they were, unused.

Only sections nothing else refers to by address may move: notes, hash tables, ``.dynsym``,
``.dynstr`` and the symbol-version sections (relocations never target them; other sections link
to them by index, which does not change). A library where anything else lies in the way, where a
program header other than the first PT_LOAD covers only part of the moved range, or where a
dynamic tag unknown to this module holds a value in it, does not qualify. Memory is bounded by
the size of the headers and the dynamic array (section contents are copied in 1 MiB chunks); the
file is only ever written at known offsets or past its end.

Only ELF64 little-endian ET_DYN files without PT_INTERP and without PT_PHDR qualify (shared
libraries, not executables: the kernel derives AT_PHDR of an executable in ways that differ
between versions), with the program header table right after the ELF header at the start of the
first PT_LOAD, one PT_DYNAMIC and section headers naming ``.dynamic`` and ``.dynstr``
consistently with the dynamic array. Everything else is left to patchelf
(:mod:`wheelyard.rpath`), which also verifies the result of both paths.

The loader, ``ld``, GNU ``strip`` (also ``-g``), ``objcopy --only-keep-debug``/``--strip-debug``,
``llvm-strip`` and patchelf handle the result.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

ELF_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_ET_DYN = 3
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3
_PT_PHDR = 6
_PF_W = 2
_PF_R = 4
_PN_XNUM = 0xFFFF
_SHT_NULL = 0
_SHT_STRTAB = 3
_SHT_DYNAMIC = 6
_SHT_NOTE = 7
_SHT_NOBITS = 8
_SHF_ALLOC = 2
# Sections the grown program header table may displace: nothing refers to them but the dynamic
# array (by address) and other sections (by index); relocations never target them.
_MOVABLE = frozenset(
    {
        _SHT_NOTE,
        5,  # SHT_HASH
        11,  # SHT_DYNSYM
        0x6FFFFFF6,  # SHT_GNU_HASH
        0x6FFFFFFD,  # SHT_GNU_verdef
        0x6FFFFFFE,  # SHT_GNU_verneed
        0x6FFFFFFF,  # SHT_GNU_versym
    }
)
_DT_NULL = 0
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_RPATH = 15
_DT_RUNPATH = 29
# Dynamic tags whose value is an address (d_ptr), and tags known to hold anything else (d_val).
_D_PTR = frozenset(
    {3, 4, 5, 6, 7, 12, 13, 17, 21, 23, 25, 26, 32, 34, 36, 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFE}
)
_D_PTR_RANGE = range(0x6FFFFE00, 0x6FFFFF00)  # DT_ADDRRNGLO..DT_ADDRRNGHI (DT_GNU_HASH, ...)
_D_VAL = frozenset(
    {0, 1, 2, 8, 9, 10, 11, 14, 15, 16, 18, 19, 20, 22, 24, 27, 28, 29, 30, 33, 35, 37}
    | {0x6FFFFFF9, 0x6FFFFFFA, 0x6FFFFFFB, 0x6FFFFFFD, 0x6FFFFFFF, 0x7FFFFFFD, 0x7FFFFFFF}
)
_D_VAL_RANGE = range(0x6FFFFD00, 0x6FFFFE00)  # DT_VALRNGLO..DT_VALRNGHI
_SPARE_NULLS = 2  # beyond the terminator: room for a later edit to add an entry in place
_PAGE = 4096  # the smallest page size the new segment is aligned to
_MAX_FILE_ALIGN = 1 << 16  # pad the file to at most this much (64 KiB pages); the rest is vaddr
_CHUNK = 1 << 20

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_DYN = struct.Struct("<qQ")
_E_PHNUM = 56  # byte offset of the ELF64 header field patched in place


class _Phdr(NamedTuple):
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


class _Shdr(NamedTuple):
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


@dataclass(frozen=True, kw_only=True)
class _Move:
    """The sections the grown program header table displaces, and what refers to them."""

    sections: tuple[int, ...]  # section header indices
    start: int  # file range [start, end) holding them, all inside the first PT_LOAD
    end: int
    vaddr: int  # the address of ``start``
    align: int  # the range is copied at a position congruent to ``start`` modulo this
    phdrs: tuple[int, ...]  # program headers lying inside the range (PT_NOTE, ...)

    def holds(self, address: int) -> bool:
        return self.vaddr <= address < self.vaddr + self.end - self.start


@dataclass(frozen=True, kw_only=True)
class _Library:
    """What the append needs from a qualifying file."""

    size: int
    phoff: int
    phdrs: tuple[_Phdr, ...]
    shoff: int
    shdrs: tuple[_Shdr, ...]
    dynamic_index: int  # section header index of .dynamic
    dynamic: _Shdr
    dynstr_index: int
    dynstr: _Shdr
    entries: tuple[tuple[int, int], ...]  # the dynamic array up to (without) DT_NULL
    move: _Move


def append_runpath(path: Path, value: str) -> str | None:
    """Make ``value`` the only DT_RUNPATH of ``path`` (and drop DT_RPATH) by appending.

    Returns ``None`` when done; otherwise why the file does not qualify (see the module
    docstring), leaving it untouched. ``path`` must be a private copy: it is edited in place.
    The caller verifies the result.
    """
    if not value or "\0" in value or not value.isascii():
        raise ValueError(f"invalid RUNPATH value {value!r}")
    fd = os.open(path, os.O_RDWR)
    try:
        found = _inspect(fd)
        if isinstance(found, str):
            return found
        _append(fd, found, value.encode("ascii"))
    finally:
        os.close(fd)
    return None


def _inspect(fd: int) -> _Library | str:
    """The parts of the file the append rewrites, or why the file does not qualify."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, _EHDR.size, 0)
    if len(head) < _EHDR.size or head[:4] != ELF_MAGIC:
        return "not an ELF file"
    if head[4] != _ELFCLASS64 or head[5] != _ELFDATA2LSB:
        return "not ELF64 little-endian"
    fields = _EHDR.unpack(head)
    e_type, phoff, shoff = fields[1], fields[5], fields[6]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[9:14]
    if e_type != _ET_DYN:
        return "not ET_DYN"
    if phentsize != _PHDR.size or shentsize != _SHDR.size:
        return "unusual program or section header entry size"
    if not 0 < phnum < _PN_XNUM - 1:
        return "no program headers, or too many to add one"
    if shnum == 0 or shstrndx >= shnum:
        return "no section headers (or extended section numbering)"
    if phoff + phnum * _PHDR.size > size or shoff + shnum * _SHDR.size > size:
        return "program or section headers end past the end of the file"
    phdrs = tuple(
        _Phdr(*fields) for fields in _PHDR.iter_unpack(_pread(fd, phnum * _PHDR.size, phoff))
    )
    types = [ph.type for ph in phdrs]
    if _PT_INTERP in types:
        return "has PT_INTERP (an executable)"
    if _PT_PHDR in types:
        return "has PT_PHDR"
    if types.count(_PT_DYNAMIC) != 1:
        return "not exactly one PT_DYNAMIC"
    loads = [ph for ph in phdrs if ph.type == _PT_LOAD]
    if not loads or [ph.vaddr for ph in loads] != sorted(ph.vaddr for ph in loads):
        return "no PT_LOAD, or PT_LOAD entries not sorted by address"
    if any(ph.align & (ph.align - 1) for ph in loads):
        return "a PT_LOAD alignment is not a power of two"
    segment = phdrs[types.index(_PT_DYNAMIC)]
    shdrs = tuple(
        _Shdr(*fields) for fields in _SHDR.iter_unpack(_pread(fd, shnum * _SHDR.size, shoff))
    )
    dynamics = [n for n, sh in enumerate(shdrs) if sh.type == _SHT_DYNAMIC]
    if len(dynamics) != 1:
        return "not exactly one SHT_DYNAMIC section"
    dynamic_index = dynamics[0]
    dynamic = shdrs[dynamic_index]
    dynstr_index = dynamic.link
    if not 0 < dynstr_index < shnum or shdrs[dynstr_index].type != _SHT_STRTAB:
        return "the dynamic section does not link to a string table"
    dynstr = shdrs[dynstr_index]
    names = shdrs[shstrndx]
    if (
        _section_name(fd, names, dynamic.name) != b".dynamic"
        or _section_name(fd, names, dynstr.name) != b".dynstr"
    ):
        return "the dynamic sections are not named .dynamic and .dynstr"
    if (dynamic.offset, dynamic.addr) != (segment.offset, segment.vaddr):
        return ".dynamic and PT_DYNAMIC disagree"
    if segment.offset + segment.filesz > size or dynstr.offset + dynstr.size > size:
        return ".dynamic or .dynstr ends past the end of the file"
    if dynstr.size == 0 or _pread(fd, 1, dynstr.offset + dynstr.size - 1) != b"\0":
        return ".dynstr does not end with NUL"
    entries = []
    raw = _pread(fd, segment.filesz - segment.filesz % _DYN.size, segment.offset)
    for tag, val in _DYN.iter_unpack(raw):
        if tag == _DT_NULL:
            break
        entries.append((tag, val))
    else:
        return "the dynamic array has no DT_NULL"
    strtab = [val for tag, val in entries if tag == _DT_STRTAB]
    strsz = [val for tag, val in entries if tag == _DT_STRSZ]
    if strtab != [dynstr.addr] or strsz != [dynstr.size]:
        return "DT_STRTAB/DT_STRSZ and .dynstr disagree"
    move = _plan_move(phoff, phdrs, shdrs, dynstr_index, entries)
    if isinstance(move, str):
        return move
    return _Library(
        size=size,
        phoff=phoff,
        phdrs=phdrs,
        shoff=shoff,
        shdrs=shdrs,
        dynamic_index=dynamic_index,
        dynamic=dynamic,
        dynstr_index=dynstr_index,
        dynstr=dynstr,
        entries=tuple(entries),
        move=move,
    )


def _plan_move(
    phoff: int,
    phdrs: tuple[_Phdr, ...],
    shdrs: tuple[_Shdr, ...],
    dynstr_index: int,
    entries: list[tuple[int, int]],
) -> _Move | str:
    """The sections in the way of one more program header, or why they cannot move."""
    # Room for the grown table and then some: patchelf, run on the result later, puts its table
    # at the same offset with one more PT_LOAD and up to one PT_NOTE per note section, and
    # moves only the sections that come first in section header order, which no longer
    # follows file order once sections have moved here.
    notes = sum(sh.type == _SHT_NOTE for sh in shdrs)
    room_end = phoff + (len(phdrs) + 2 + notes) * _PHDR.size
    first = min(
        (n for n, ph in enumerate(phdrs) if ph.type == _PT_LOAD), key=lambda n: phdrs[n].vaddr
    )
    head = phdrs[first]
    if phoff != _EHDR.size or room_end > head.offset + head.filesz or head.offset:
        return "the program header table does not start the first PT_LOAD with room to grow"
    bias = head.vaddr - head.offset
    moved = tuple(
        n
        for n, sh in enumerate(shdrs)
        if n
        and sh.type not in (_SHT_NULL, _SHT_NOBITS)
        and sh.offset < room_end
        and (sh.offset + sh.size > phoff if sh.size else sh.offset >= phoff)
    )
    if not moved:  # room left by an earlier append
        table_end = phoff + (len(phdrs) + 1) * _PHDR.size
        return _Move(
            sections=(), start=table_end, end=table_end, vaddr=bias + table_end, align=1, phdrs=()
        )
    for n in moved:
        sh = shdrs[n]
        if sh.type not in _MOVABLE and n != dynstr_index:
            return f"section {n} (type {sh.type:#x}) lies where the program header table grows"
        if not sh.flags & _SHF_ALLOC or sh.addr - sh.offset != bias:
            return f"section {n} lies where the program header table grows but is not mapped there"
    start = min(shdrs[n].offset for n in moved)
    end = max(shdrs[n].offset + shdrs[n].size for n in moved)
    if end > head.offset + head.filesz:
        return "the sections where the program header table grows end past the first PT_LOAD"
    for n, sh in enumerate(shdrs):
        others = n not in moved and sh.type not in (_SHT_NULL, _SHT_NOBITS)
        if others and sh.size and sh.offset < end and start < sh.offset + sh.size:
            return f"section {n} overlaps the sections to move"
    vaddr = bias + start
    inside: list[int] = []
    for n, ph in enumerate(phdrs):
        in_file = ph.filesz and ph.offset < end and start < ph.offset + ph.filesz
        in_memory = ph.memsz and ph.vaddr < vaddr + end - start and vaddr < ph.vaddr + ph.memsz
        if n == first or not (in_file or in_memory):
            continue
        if (
            ph.type == _PT_LOAD
            or ph.filesz != ph.memsz
            or ph.vaddr - ph.offset != bias
            or not start <= ph.offset <= ph.offset + ph.filesz <= end
        ):
            return f"program header {n} covers part of the sections to move"
        inside.append(n)
    for tag, val in entries:
        known = tag in _D_PTR or tag in _D_PTR_RANGE or tag in _D_VAL or tag in _D_VAL_RANGE
        if not known and vaddr <= val < vaddr + end - start:
            return f"dynamic tag {tag:#x} may refer to the sections to move"
    align = max(8, *(shdrs[n].addralign for n in moved), *(phdrs[n].align for n in inside))
    if align > _PAGE or align & (align - 1):
        return "the sections to move have an unusual alignment"
    return _Move(
        sections=moved, start=start, end=end, vaddr=vaddr, align=align, phdrs=tuple(inside)
    )


def _append(fd: int, lib: _Library, value: bytes) -> None:
    loads = [ph for ph in lib.phdrs if ph.type == _PT_LOAD]
    align = max(_PAGE, *(ph.align for ph in loads))
    # The new segment's first page must share no page with any segment below it, whatever the
    # page size up to ``align``; its file offset and address are congruent modulo ``align``.
    blob_offset = _round_up(lib.size, min(align, _MAX_FILE_ALIGN))
    top = max(ph.vaddr + ph.memsz for ph in lib.phdrs)
    blob_vaddr = _round_up(top, align) + blob_offset % align

    # The blob: the displaced sections (as one range, keeping their alignment), the string
    # table, the dynamic array (8-aligned).
    move = lib.move
    moved_at = move.start % move.align
    shift_offset = blob_offset + moved_at - move.start
    shift_vaddr = blob_vaddr + moved_at - move.vaddr
    dynstr_at = moved_at + move.end - move.start
    strsz = lib.dynstr.size + len(value) + 1
    dynamic_at = _round_up(dynstr_at + strsz, 8)
    entries = []
    for tag, val in lib.entries:
        if tag in (_DT_RPATH, _DT_RUNPATH):
            continue
        if tag == _DT_STRTAB:
            val = blob_vaddr + dynstr_at
        elif tag == _DT_STRSZ:
            val = strsz
        elif (tag in _D_PTR or tag in _D_PTR_RANGE) and move.holds(val):
            val += shift_vaddr
        entries.append((tag, val))
    entries.append((_DT_RUNPATH, lib.dynstr.size))
    entries += [(_DT_NULL, 0)] * (1 + _SPARE_NULLS)
    dynamic_size = len(entries) * _DYN.size
    blob_size = dynamic_at + dynamic_size

    new_load = _Phdr(
        type=_PT_LOAD,
        flags=_PF_R | _PF_W,
        offset=blob_offset,
        vaddr=blob_vaddr,
        paddr=blob_vaddr,
        filesz=blob_size,
        memsz=blob_size,
        align=align,
    )
    last_load = max(n for n, ph in enumerate(lib.phdrs) if ph.type == _PT_LOAD)
    phdrs: list[_Phdr] = []
    for n, ph in enumerate(lib.phdrs):
        if ph.type == _PT_DYNAMIC:
            ph = ph._replace(
                offset=blob_offset + dynamic_at,
                vaddr=blob_vaddr + dynamic_at,
                paddr=blob_vaddr + dynamic_at,
                filesz=dynamic_size,
                memsz=dynamic_size,
            )
        elif n in move.phdrs:
            ph = ph._replace(
                offset=ph.offset + shift_offset,
                vaddr=ph.vaddr + shift_vaddr,
                paddr=ph.paddr + shift_vaddr,
            )
        phdrs.append(ph)
        if n == last_load:
            phdrs.append(new_load)

    # Everything past the old end of the file first, then the headers that point to it; the
    # grown program header table last, over the displaced sections' old bytes.
    _copy(fd, move.start, blob_offset + moved_at, move.end - move.start)
    _copy(fd, lib.dynstr.offset, blob_offset + dynstr_at, lib.dynstr.size)
    tail = value + b"\0" + bytes(dynamic_at - dynstr_at - strsz)
    tail += b"".join(_DYN.pack(tag, val) for tag, val in entries)
    _pwrite(fd, tail, blob_offset + dynstr_at + lib.dynstr.size)

    shdrs = {
        n: lib.shdrs[n]._replace(
            offset=lib.shdrs[n].offset + shift_offset, addr=lib.shdrs[n].addr + shift_vaddr
        )
        for n in move.sections
    }
    shdrs[lib.dynstr_index] = lib.dynstr._replace(
        offset=blob_offset + dynstr_at, addr=blob_vaddr + dynstr_at, size=strsz
    )
    shdrs[lib.dynamic_index] = lib.dynamic._replace(
        offset=blob_offset + dynamic_at, addr=blob_vaddr + dynamic_at, size=dynamic_size
    )
    for n, sh in sorted(shdrs.items()):
        _pwrite(fd, _SHDR.pack(*sh), lib.shoff + n * _SHDR.size)
    table = b"".join(_PHDR.pack(*ph) for ph in phdrs)
    _pwrite(fd, table, lib.phoff)
    vacated = lib.phoff + len(table)
    for at in range(vacated, move.end, _CHUNK):  # what is left of the moved sections' old bytes
        _pwrite(fd, bytes(min(_CHUNK, move.end - at)), at)
    _pwrite(fd, struct.pack("<H", len(phdrs)), _E_PHNUM)


def _copy(fd: int, source: int, target: int, length: int) -> None:
    """Copy ``length`` bytes within the file, in bounded chunks (the ranges do not overlap)."""
    for done in range(0, length, _CHUNK):
        _pwrite(fd, _pread(fd, min(_CHUNK, length - done), source + done), target + done)


def _section_name(fd: int, names: _Shdr, offset: int) -> bytes:
    if offset >= names.size:
        return b""
    raw = os.pread(fd, min(64, names.size - offset), names.offset + offset)
    return raw.split(b"\0", 1)[0]


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def _pread(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise EOFError(f"short read of {length} bytes at offset {offset:#x}")
    return data


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
