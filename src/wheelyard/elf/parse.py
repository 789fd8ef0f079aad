"""Bounded reading of an ELF file's tables: every size is checked before it is used.

:class:`BoundedFile` reads the ELF header and checks that the program and section header tables
lie inside the file, with the entry sizes the ELF class defines and counts under the caps below.
Every later read goes through :meth:`BoundedFile.read`, which checks the range against the file's
size before seeking or allocating. Strings stop at their table's end and at :data:`MAX_STRING`;
walks that follow offsets inside the file (version chains) stop after as many steps as their
region can hold, so a chain that loops is an error, not a hang. Problems raise :class:`Malformed`,
which :mod:`wheelyard.elf.read` turns into an ElfError naming the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from elftools.elf.enums import ENUM_P_TYPE_BASE

# Caps on what a header may ask for; real files stay far below them.
MAX_DYNAMIC_SIZE = 1 << 20  # bytes of PT_DYNAMIC (real ones are a few hundred bytes)
MAX_STRING = 1 << 16  # one string of a string table, NUL included
MAX_PROGRAM_HEADERS = 0xFFFE  # PN_XNUM (0xFFFF) and above: extended numbering, not loadable
MAX_SECTIONS = 1 << 20  # section headers, with extended numbering
_CHUNK = 1 << 20  # tables are read in pieces of at most this size

_PT_LOAD = 1
_PT_DYNAMIC = 2
_SHT_SYMTAB = 2
_SHT_NOBITS = 8
_SHT_DYNSYM = 11
_VERNEED = "HHIII"  # vn_version, vn_cnt, vn_file, vn_aux, vn_next
_VERNAUX = "IHHII"  # vna_hash, vna_flags, vna_other, vna_name, vna_next
_VERDEF = "HHHHIII"  # vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next
_VERDAUX = "II"  # vda_name, vda_next
_SEGMENT_NAMES = {v: k for k, v in ENUM_P_TYPE_BASE.items() if isinstance(v, int)}


class Malformed(Exception):
    """The file is truncated, corrupt or absurd; the message says where."""


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One program header."""

    kind: str  # "PT_LOAD", "PT_DYNAMIC", "PT_PHDR", ... (a number for unknown types)
    offset: int
    filesz: int
    vaddr: int
    memsz: int

    def covers(self, other: Segment) -> bool:
        """Whether ``other`` lies inside this segment, both in the file and in memory."""
        inside = self.offset <= other.offset and (
            other.offset + other.filesz <= self.offset + self.filesz
        )
        return inside and other.vaddr - self.vaddr == other.offset - self.offset


@dataclass(frozen=True, kw_only=True)
class Section:
    """One section header (the fields wheelyard uses)."""

    index: int
    type: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class BoundedFile:
    """An open ELF file whose header tables were checked to lie inside it."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        ident = self.read(0, 16, "the ELF identification")
        if ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise Malformed(f"unknown ELF class {ident[4]} or data encoding {ident[5]}")
        self.bits = 32 * ident[4]
        self.little_endian = ident[5] == 1
        order = "<" if self.little_endian else ">"
        wide = self.bits == 64
        ehdr = struct.Struct(order + ("16sHHIQQQIHHHHHH" if wide else "16sHHIIIIIHHHHHH"))
        self.phdr = struct.Struct(order + ("IIQQQQQQ" if wide else "IIIIIIII"))
        self.shdr = struct.Struct(order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII"))
        self.dyn = struct.Struct(order + ("qQ" if wide else "iI"))
        self.sym_size = 24 if wide else 16
        self.order = order
        fields = ehdr.unpack(self.read(0, ehdr.size, "the ELF header"))
        self.e_type, self.e_machine = fields[1], fields[2]
        phoff, shoff, phentsize, phnum, shentsize, shnum = fields[5], fields[6], *fields[9:13]
        self.shoff, self.shnum = self._section_table(shoff, shentsize, shnum)
        self.segments = self._segments(phoff, phentsize, phnum)

    def read(self, offset: int, length: int, what: str) -> bytes:
        """``length`` bytes at ``offset``, after checking that they lie inside the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise Malformed(
                f"{what} ({length} bytes at offset {offset:#x}) ends past the end of the file "
                f"({self.size} bytes)"
            )
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise Malformed(f"{what}: the file changed while it was read")
        return data

    def _section_table(self, shoff: int, entsize: int, count: int) -> tuple[int, int]:
        if shoff == 0:
            return 0, 0
        if entsize != self.shdr.size:
            raise Malformed(f"e_shentsize is {entsize}, not {self.shdr.size}")
        if count == 0:  # extended numbering: the count is section 0's sh_size
            count = self.shdr.unpack(self.read(shoff, entsize, "section header 0"))[5]
        if count > MAX_SECTIONS:
            raise Malformed(f"{count} section headers (more than {MAX_SECTIONS})")
        self.read_check(shoff, count * entsize, f"the section header table of {count} entries")
        return shoff, count

    def read_check(self, offset: int, length: int, what: str) -> None:
        """Check that ``length`` bytes at ``offset`` lie inside the file, reading nothing."""
        if offset < 0 or length < 0 or offset + length > self.size:
            self.read(offset, length, what)  # raises with the message

    def _segments(self, phoff: int, entsize: int, count: int) -> tuple[Segment, ...]:
        if count == 0:
            return ()
        if count > MAX_PROGRAM_HEADERS:
            raise Malformed(f"e_phnum is {count:#x}: extended program header numbering")
        if entsize != self.phdr.size:
            raise Malformed(f"e_phentsize is {entsize}, not {self.phdr.size}")
        raw = self.read(phoff, count * entsize, f"the program header table of {count} entries")
        segments = []
        for fields in self.phdr.iter_unpack(raw):
            if self.bits == 64:
                kind, _flags, offset, vaddr, _paddr, filesz, memsz, _align = fields
            else:
                kind, offset, vaddr, _paddr, filesz, memsz, _flags, _align = fields
            name = _SEGMENT_NAMES.get(kind, f"{kind:#x}")
            if kind in (_PT_LOAD, _PT_DYNAMIC) and offset + filesz > self.size:
                raise Malformed(f"{name} at offset {offset:#x} ends past the end of the file")
            segments.append(
                Segment(kind=name, offset=offset, filesz=filesz, vaddr=vaddr, memsz=memsz)
            )
        return tuple(segments)

    def file_offset(self, address: int, length: int) -> int | None:
        """Where ``length`` bytes at ``address`` are in the file: inside one PT_LOAD's bytes."""
        for seg in self.segments:
            if seg.kind != "PT_LOAD" or not seg.vaddr <= address:
                continue
            if address + length <= seg.vaddr + seg.filesz:
                return seg.offset + address - seg.vaddr
        return None

    def sections(self) -> Iterator[Section]:
        """The section headers, read in chunks (there can be many)."""
        per_chunk = _CHUNK // self.shdr.size
        for first in range(0, self.shnum, per_chunk):
            count = min(per_chunk, self.shnum - first)
            raw = self.read(self.shoff + first * self.shdr.size, count * self.shdr.size, "sections")
            for n, fields in enumerate(self.shdr.iter_unpack(raw), start=first):
                _name, kind, _flags, _addr, offset, size, link, info, _align, entsize = fields
                self._check_section(n, kind, offset, size, link, entsize)
                yield Section(
                    index=n,
                    type=kind,
                    offset=offset,
                    size=size,
                    link=link,
                    info=info,
                    entsize=entsize,
                )

    def _check_section(
        self, n: int, kind: int, offset: int, size: int, link: int, entsize: int
    ) -> None:
        if kind != _SHT_NOBITS:
            self.read_check(offset, size, f"section {n}")
        if link >= self.shnum:
            raise Malformed(f"section {n} links to section {link}, which does not exist")
        if kind in (_SHT_SYMTAB, _SHT_DYNSYM) and entsize != self.sym_size:
            raise Malformed(
                f"section {n} (a symbol table) has sh_entsize {entsize}, not {self.sym_size}"
            )
        if entsize > self.size:
            raise Malformed(f"section {n} has sh_entsize {entsize}, larger than the file")

    def check_sections(self) -> None:
        """Check every section header: contents inside the file, links, entry sizes."""
        for _section in self.sections():
            pass

    def string(self, table: tuple[int, int] | None, offset: int, what: str) -> bytes:
        """The NUL-terminated string at ``offset`` of a string table ``(file offset, size)``."""
        if table is None:
            raise Malformed(
                f"{what} names a string, but there is no string table (DT_STRTAB and DT_STRSZ "
                "inside a PT_LOAD segment) to read it from"
            )
        start, size = table
        if offset >= size:
            raise Malformed(f"{what} string offset {offset:#x} is past the string table's end")
        limit = min(size - offset, MAX_STRING)
        length = min(256, limit)
        while True:
            data = self.read(start + offset, length, f"the {what} string")
            end = data.find(b"\0")
            if end >= 0:
                return data[:end]
            if length == limit:
                raise Malformed(
                    f"the {what} string at offset {offset:#x} has no NUL within {limit} bytes"
                )
            length = min(length * 16, limit)


def verneed(
    elf: BoundedFile, region: tuple[int, int], count: int | None
) -> Iterator[tuple[int, list[int]]]:
    """``(vn_file, [vna_name, ...])`` of each version need in the file range ``region``.

    Follows ``vn_next``/``vna_next`` until they are 0 or ``count`` entries were read, and never
    visits more entries than the region can hold (a chain that loops is an error).
    """
    start, end = region
    verneed = struct.Struct(elf.order + _VERNEED)
    vernaux = struct.Struct(elf.order + _VERNAUX)
    budget = (end - start) // verneed.size
    offset, done = start, 0
    while count is None or done < count:
        budget = _spend(budget, offset, end, verneed.size, "version need")
        _version, aux_count, file, aux, following = verneed.unpack(
            elf.read(offset, verneed.size, "a version need")
        )
        names, at = [], offset + aux
        for _ in range(aux_count):
            budget = _spend(budget, at, end, vernaux.size, "version need auxiliary")
            fields = vernaux.unpack(elf.read(at, vernaux.size, "a version need auxiliary"))
            names.append(fields[3])
            if not fields[4]:
                break
            at += fields[4]
        yield file, names
        done += 1
        if not following:
            return
        offset += following


def verdef_names(elf: BoundedFile, section: Section) -> Iterator[int]:
    """``vda_name`` of every version definition auxiliary of an SHT_GNU_verdef section."""
    start, end = section.offset, section.offset + section.size
    verdef = struct.Struct(elf.order + _VERDEF)
    verdaux = struct.Struct(elf.order + _VERDAUX)
    budget = section.size // verdaux.size
    offset = start
    for _ in range(section.info):
        budget = _spend(budget, offset, end, verdef.size, "version definition")
        fields = verdef.unpack(elf.read(offset, verdef.size, "a version definition"))
        at = offset + fields[5]
        for _ in range(fields[3]):
            budget = _spend(budget, at, end, verdaux.size, "version definition auxiliary")
            name, following = verdaux.unpack(elf.read(at, verdaux.size, "a version auxiliary"))
            yield name
            if not following:
                break
            at += following
        if not fields[6]:
            return
        offset += fields[6]


def _spend(budget: int, offset: int, end: int, size: int, what: str) -> int:
    """One more step of a version walk: inside its region, and within the step budget."""
    if offset + size > end or offset < 0:
        raise Malformed(f"a {what} at offset {offset:#x} lies outside its table")
    if budget <= 0:
        raise Malformed(f"the {what} chain has more entries than its table can hold")
    return budget - 1


def symbol_names(elf: BoundedFile, section: Section) -> Iterator[int]:
    """``st_name`` of every symbol of a symbol table, read in chunks (it can be megabytes)."""
    if section.entsize != elf.sym_size:
        raise Malformed(
            f"section {section.index} (symbols) has entries of {section.entsize} bytes, "
            f"not {elf.sym_size}"
        )
    # st_name comes first in both classes.
    name = struct.Struct(elf.order + "I" + "x" * (elf.sym_size - 4))
    per_chunk = _CHUNK // elf.sym_size
    count = section.size // elf.sym_size
    for first in range(0, count, per_chunk):
        batch = min(per_chunk, count - first)
        offset = section.offset + first * elf.sym_size
        data = elf.read(offset, batch * elf.sym_size, f"section {section.index} (symbols)")
        for (value,) in name.iter_unpack(data):
            yield value
