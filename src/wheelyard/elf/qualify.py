"""Whether the streaming RUNPATH append can edit a shared library, and what it must move.

:func:`inspect` reads the headers of a candidate file (each table checked to lie inside it, the
dynamic array capped at :data:`~wheelyard.elf.parse.MAX_DYNAMIC_SIZE`) and returns the
:class:`Library` the append rewrites, or why the file does not qualify; :mod:`wheelyard.elf.edit`
describes the rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wheelyard.elf.elf64 import (
    ADDRESS_LIMIT,
    D_PTR,
    D_PTR_RANGE,
    D_VAL,
    D_VAL_RANGE,
    DT_NULL,
    DT_STRSZ,
    DT_STRTAB,
    DYN,
    EHDR,
    ELF_MAGIC,
    ELFCLASS64,
    ELFDATA2LSB,
    ET_DYN,
    MOVABLE,
    PAGE,
    PHDR,
    PN_XNUM,
    PT_DYNAMIC,
    PT_INTERP,
    PT_LOAD,
    PT_PHDR,
    SHDR,
    SHF_ALLOC,
    SHT_DYNAMIC,
    SHT_NOBITS,
    SHT_NOTE,
    SHT_NULL,
    SHT_STRTAB,
    Phdr,
    Shdr,
    pread,
)
from wheelyard.elf.parse import MAX_DYNAMIC_SIZE


@dataclass(frozen=True, kw_only=True)
class Move:
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
class Library:
    """What the append needs from a qualifying file."""

    size: int
    phoff: int
    phdrs: tuple[Phdr, ...]
    shoff: int
    shdrs: tuple[Shdr, ...]
    dynamic_index: int  # section header index of .dynamic
    dynamic: Shdr
    dynstr_index: int
    dynstr: Shdr
    entries: tuple[tuple[int, int], ...]  # the dynamic array up to (without) DT_NULL
    move: Move


@dataclass(frozen=True, kw_only=True)
class _Headers:
    """The header tables of a candidate file, each checked to lie inside it."""

    size: int
    phoff: int
    phdrs: tuple[Phdr, ...]
    shoff: int
    shdrs: tuple[Shdr, ...]
    shstrndx: int

    @property
    def dynamic_segment(self) -> Phdr:
        return next(ph for ph in self.phdrs if ph.type == PT_DYNAMIC)


def inspect(fd: int) -> Library | str:
    """The parts of the file the append rewrites, or why the file does not qualify."""
    headers = _read_headers(fd)
    if isinstance(headers, str):
        return headers
    problem = _segment_problem(headers)
    if problem is not None:
        return problem
    sections = _dynamic_sections(fd, headers)
    if isinstance(sections, str):
        return sections
    dynamic_index, dynstr_index = sections
    entries = _dynamic_entries(fd, headers, dynstr_index)
    if isinstance(entries, str):
        return entries
    move = _plan_move(headers.phoff, headers.phdrs, headers.shdrs, dynstr_index, entries)
    if isinstance(move, str):
        return move
    return Library(
        size=headers.size,
        phoff=headers.phoff,
        phdrs=headers.phdrs,
        shoff=headers.shoff,
        shdrs=headers.shdrs,
        dynamic_index=dynamic_index,
        dynamic=headers.shdrs[dynamic_index],
        dynstr_index=dynstr_index,
        dynstr=headers.shdrs[dynstr_index],
        entries=tuple(entries),
        move=move,
    )


def _read_headers(fd: int) -> _Headers | str:
    """The ELF header's checks, then the program and section header tables."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, EHDR.size, 0)
    if len(head) < EHDR.size or head[:4] != ELF_MAGIC:
        return "not an ELF file"
    if head[4] != ELFCLASS64 or head[5] != ELFDATA2LSB:
        return "not ELF64 little-endian"
    fields = EHDR.unpack(head)
    e_type, phoff, shoff = fields[1], fields[5], fields[6]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[9:14]
    if e_type != ET_DYN:
        return "not ET_DYN"
    if phentsize != PHDR.size or shentsize != SHDR.size:
        return "unusual program or section header entry size"
    if not 0 < phnum < PN_XNUM - 1:
        return "no program headers, or too many to add one"
    if shnum == 0 or shstrndx >= shnum:
        return "no section headers (or extended section numbering)"
    if phoff + phnum * PHDR.size > size or shoff + shnum * SHDR.size > size:
        return "program or section headers end past the end of the file"
    phdrs = pread(fd, phnum * PHDR.size, phoff)
    shdrs = pread(fd, shnum * SHDR.size, shoff)
    return _Headers(
        size=size,
        phoff=phoff,
        phdrs=tuple(Phdr(*fields) for fields in PHDR.iter_unpack(phdrs)),
        shoff=shoff,
        shdrs=tuple(Shdr(*fields) for fields in SHDR.iter_unpack(shdrs)),
        shstrndx=shstrndx,
    )


def _segment_problem(headers: _Headers) -> str | None:
    """Why the program headers rule the file out, if they do."""
    types = [ph.type for ph in headers.phdrs]
    if PT_INTERP in types:
        return "has PT_INTERP (an executable)"
    if PT_PHDR in types:
        return "has PT_PHDR"
    if types.count(PT_DYNAMIC) != 1:
        return "not exactly one PT_DYNAMIC"
    loads = [ph for ph in headers.phdrs if ph.type == PT_LOAD]
    if not loads or [ph.vaddr for ph in loads] != sorted(ph.vaddr for ph in loads):
        return "no PT_LOAD, or PT_LOAD entries not sorted by address"
    if any(ph.align & (ph.align - 1) for ph in loads):
        return "a PT_LOAD alignment is not a power of two"
    if any(ph.offset + ph.filesz > headers.size for ph in loads):
        return "a PT_LOAD segment ends past the end of the file"
    if any(ph.vaddr + ph.memsz >= ADDRESS_LIMIT for ph in headers.phdrs):
        return "a segment ends past the end of the 64-bit address space"
    return None


def _dynamic_sections(fd: int, headers: _Headers) -> tuple[int, int] | str:
    """Section indices of ``.dynamic`` and ``.dynstr``, checked against PT_DYNAMIC."""
    shdrs = headers.shdrs
    dynamics = [n for n, sh in enumerate(shdrs) if sh.type == SHT_DYNAMIC]
    if len(dynamics) != 1:
        return "not exactly one SHT_DYNAMIC section"
    dynamic = shdrs[dynamics[0]]
    dynstr_index = dynamic.link
    if not 0 < dynstr_index < len(shdrs) or shdrs[dynstr_index].type != SHT_STRTAB:
        return "the dynamic section does not link to a string table"
    dynstr = shdrs[dynstr_index]
    names = shdrs[headers.shstrndx]
    if (
        _section_name(fd, headers.size, names, dynamic.name) != b".dynamic"
        or _section_name(fd, headers.size, names, dynstr.name) != b".dynstr"
    ):
        return "the dynamic sections are not named .dynamic and .dynstr"
    segment = headers.dynamic_segment
    if (dynamic.offset, dynamic.addr) != (segment.offset, segment.vaddr):
        return ".dynamic and PT_DYNAMIC disagree"
    if segment.offset + segment.filesz > headers.size or dynstr.offset + dynstr.size > headers.size:
        return ".dynamic or .dynstr ends past the end of the file"
    if segment.filesz > MAX_DYNAMIC_SIZE:
        return f"PT_DYNAMIC is larger than {MAX_DYNAMIC_SIZE} bytes"
    if dynstr.size == 0 or pread(fd, 1, dynstr.offset + dynstr.size - 1) != b"\0":
        return ".dynstr does not end with NUL"
    return dynamics[0], dynstr_index


def _dynamic_entries(fd: int, headers: _Headers, dynstr_index: int) -> list[tuple[int, int]] | str:
    """The dynamic array up to (without) DT_NULL, checked to agree with ``.dynstr``."""
    segment = headers.dynamic_segment
    entries = []
    raw = pread(fd, segment.filesz - segment.filesz % DYN.size, segment.offset)
    for tag, val in DYN.iter_unpack(raw):
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    else:
        return "the dynamic array has no DT_NULL"
    dynstr = headers.shdrs[dynstr_index]
    strtab = [val for tag, val in entries if tag == DT_STRTAB]
    strsz = [val for tag, val in entries if tag == DT_STRSZ]
    if strtab != [dynstr.addr] or strsz != [dynstr.size]:
        return "DT_STRTAB/DT_STRSZ and .dynstr disagree"
    return entries


def _plan_move(
    phoff: int,
    phdrs: tuple[Phdr, ...],
    shdrs: tuple[Shdr, ...],
    dynstr_index: int,
    entries: list[tuple[int, int]],
) -> Move | str:
    """The sections in the way of one more program header, or why they cannot move."""
    # Room for the grown table and then some: patchelf, run on the result later, puts its table
    # at the same offset with one more PT_LOAD and up to one PT_NOTE per note section, and
    # moves only the sections that come first in section header order, which no longer
    # follows file order once sections have moved here.
    notes = sum(sh.type == SHT_NOTE for sh in shdrs)
    room_end = phoff + (len(phdrs) + 2 + notes) * PHDR.size
    first = min(
        (n for n, ph in enumerate(phdrs) if ph.type == PT_LOAD), key=lambda n: phdrs[n].vaddr
    )
    head = phdrs[first]
    if phoff != EHDR.size or room_end > head.offset + head.filesz or head.offset:
        return "the program header table does not start the first PT_LOAD with room to grow"
    bias = head.vaddr - head.offset
    moved = tuple(
        n
        for n, sh in enumerate(shdrs)
        if n
        and sh.type not in (SHT_NULL, SHT_NOBITS)
        and sh.offset < room_end
        and (sh.offset + sh.size > phoff if sh.size else sh.offset >= phoff)
    )
    if not moved:  # room left by an earlier append
        table_end = phoff + (len(phdrs) + 1) * PHDR.size
        return Move(
            sections=(), start=table_end, end=table_end, vaddr=bias + table_end, align=1, phdrs=()
        )
    for n in moved:
        sh = shdrs[n]
        if sh.type not in MOVABLE and n != dynstr_index:
            return f"section {n} (type {sh.type:#x}) lies where the program header table grows"
        if not sh.flags & SHF_ALLOC or sh.addr - sh.offset != bias:
            return f"section {n} lies where the program header table grows but is not mapped there"
    start = min(shdrs[n].offset for n in moved)
    end = max(shdrs[n].offset + shdrs[n].size for n in moved)
    if end > head.offset + head.filesz:
        return "the sections where the program header table grows end past the first PT_LOAD"
    for n, sh in enumerate(shdrs):
        others = n not in moved and sh.type not in (SHT_NULL, SHT_NOBITS)
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
            ph.type == PT_LOAD
            or ph.filesz != ph.memsz
            or ph.vaddr - ph.offset != bias
            or not start <= ph.offset <= ph.offset + ph.filesz <= end
        ):
            return f"program header {n} covers part of the sections to move"
        inside.append(n)
    for tag, val in entries:
        known = tag in D_PTR or tag in D_PTR_RANGE or tag in D_VAL or tag in D_VAL_RANGE
        if not known and vaddr <= val < vaddr + end - start:
            return f"dynamic tag {tag:#x} may refer to the sections to move"
    align = max(8, *(shdrs[n].addralign for n in moved), *(phdrs[n].align for n in inside))
    if align > PAGE or align & (align - 1):
        return "the sections to move have an unusual alignment"
    return Move(sections=moved, start=start, end=end, vaddr=vaddr, align=align, phdrs=tuple(inside))


def _section_name(fd: int, size: int, names: Shdr, offset: int) -> bytes:
    if offset >= names.size or names.offset + names.size > size:
        return b""
    raw = os.pread(fd, min(64, names.size - offset), names.offset + offset)
    return raw.split(b"\0", 1)[0]
