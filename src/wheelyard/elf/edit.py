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
(:mod:`wheelyard.elf.rpath`), which also verifies the result of both paths.

The loader, ``ld``, GNU ``strip`` (also ``-g``), ``objcopy --only-keep-debug``/``--strip-debug``,
``llvm-strip`` and patchelf handle the result.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from wheelyard.elf.elf64 import (
    ADDRESS_LIMIT,
    CHUNK,
    D_PTR,
    D_PTR_RANGE,
    DT_NULL,
    DT_RPATH,
    DT_RUNPATH,
    DT_STRSZ,
    DT_STRTAB,
    DYN,
    E_PHNUM,
    MAX_FILE_ALIGN,
    PAGE,
    PF_R,
    PF_W,
    PHDR,
    PT_DYNAMIC,
    PT_LOAD,
    SHDR,
    SPARE_NULLS,
    Phdr,
    Shdr,
    pread,
    pwrite,
    round_up,
)
from wheelyard.elf.qualify import Library, inspect


def append_runpath(path: Path, value: str) -> str | None:
    """Make ``value`` the only DT_RUNPATH of ``path`` (and drop DT_RPATH) by appending.

    Returns ``None`` when done; otherwise why the file does not qualify (see the module
    docstring), leaving it untouched. ``path`` must be a private copy: it is edited in place.
    The caller verifies the result.
    """
    if not value or "\0" in value or not value.isascii():
        raise ValueError(f"invalid RUNPATH value {value!r}")
    encoded = value.encode("ascii")
    fd = os.open(path, os.O_RDWR)
    try:
        found = inspect(fd)
        if isinstance(found, str):
            return found
        edit = _plan_edit(found, encoded)
        if isinstance(edit, str):
            return edit
        _append(fd, found, edit)
    finally:
        os.close(fd)
    return None


@dataclass(frozen=True, kw_only=True)
class _Blob:
    """The appended PT_LOAD: where it goes and what it holds (``*_at`` relative to its start)."""

    offset: int  # file offset
    vaddr: int
    align: int
    moved_at: int  # the displaced sections, copied as one range
    shift_offset: int  # what moving adds to the file offsets of the displaced range
    shift_vaddr: int  # and to its addresses
    dynstr_at: int  # the copied .dynstr, then the new RUNPATH string
    strsz: int
    dynamic_at: int  # the new dynamic array (8-aligned)
    entries: tuple[tuple[int, int], ...]

    @property
    def dynamic_size(self) -> int:
        return len(self.entries) * DYN.size

    @property
    def size(self) -> int:
        return self.dynamic_at + self.dynamic_size


def _plan_blob(lib: Library, value: bytes) -> _Blob | str:
    """Place the new segment and lay out its contents; why not, if it does not fit."""
    loads = [ph for ph in lib.phdrs if ph.type == PT_LOAD]
    align = max(PAGE, *(ph.align for ph in loads))
    # The new segment's first page must share no page with any segment below it, whatever the
    # page size up to ``align``; its file offset and address are congruent modulo ``align``.
    offset = round_up(lib.size, min(align, MAX_FILE_ALIGN))
    top = max(ph.vaddr + ph.memsz for ph in lib.phdrs)
    vaddr = round_up(top, align) + offset % align
    # The displaced sections (as one range, keeping their alignment), the string table, the
    # dynamic array (8-aligned).
    move = lib.move
    moved_at = move.start % move.align
    dynstr_at = moved_at + move.end - move.start
    strsz = lib.dynstr.size + len(value) + 1
    shift_vaddr = vaddr + moved_at - move.vaddr
    blob = _Blob(
        offset=offset,
        vaddr=vaddr,
        align=align,
        moved_at=moved_at,
        shift_offset=offset + moved_at - move.start,
        shift_vaddr=shift_vaddr,
        dynstr_at=dynstr_at,
        strsz=strsz,
        dynamic_at=round_up(dynstr_at + strsz, 8),
        entries=_new_entries(lib, vaddr + dynstr_at, strsz, shift_vaddr),
    )
    if max(blob.vaddr, blob.offset) + blob.size >= ADDRESS_LIMIT:
        return "the new segment would end past the end of the 64-bit address space"
    return blob


def _new_entries(
    lib: Library, dynstr_vaddr: int, strsz: int, shift_vaddr: int
) -> tuple[tuple[int, int], ...]:
    """The old entries without DT_RPATH/DT_RUNPATH, repointed, then the new DT_RUNPATH."""
    entries = []
    for tag, val in lib.entries:
        if tag in (DT_RPATH, DT_RUNPATH):
            continue
        if tag == DT_STRTAB:
            val = dynstr_vaddr
        elif tag == DT_STRSZ:
            val = strsz
        elif (tag in D_PTR or tag in D_PTR_RANGE) and lib.move.holds(val):
            val += shift_vaddr
        entries.append((tag, val))
    entries.append((DT_RUNPATH, lib.dynstr.size))
    entries += [(DT_NULL, 0)] * (1 + SPARE_NULLS)
    return tuple(entries)


def _new_phdrs(lib: Library, blob: _Blob) -> list[Phdr]:
    """The grown program header table: PT_DYNAMIC and the moved headers repointed, the new
    PT_LOAD right after the last PT_LOAD."""
    new_load = Phdr(
        type=PT_LOAD,
        flags=PF_R | PF_W,
        offset=blob.offset,
        vaddr=blob.vaddr,
        paddr=blob.vaddr,
        filesz=blob.size,
        memsz=blob.size,
        align=blob.align,
    )
    last_load = max(n for n, ph in enumerate(lib.phdrs) if ph.type == PT_LOAD)
    phdrs: list[Phdr] = []
    for n, ph in enumerate(lib.phdrs):
        if ph.type == PT_DYNAMIC:
            ph = ph._replace(
                offset=blob.offset + blob.dynamic_at,
                vaddr=blob.vaddr + blob.dynamic_at,
                paddr=blob.vaddr + blob.dynamic_at,
                filesz=blob.dynamic_size,
                memsz=blob.dynamic_size,
            )
        elif n in lib.move.phdrs:
            ph = ph._replace(
                offset=ph.offset + blob.shift_offset,
                vaddr=ph.vaddr + blob.shift_vaddr,
                paddr=ph.paddr + blob.shift_vaddr,
            )
        phdrs.append(ph)
        if n == last_load:
            phdrs.append(new_load)
    return phdrs


def _new_shdrs(lib: Library, blob: _Blob) -> dict[int, Shdr]:
    """The section headers that change: the moved sections, ``.dynstr`` and ``.dynamic``."""
    shdrs = {
        n: lib.shdrs[n]._replace(
            offset=lib.shdrs[n].offset + blob.shift_offset,
            addr=lib.shdrs[n].addr + blob.shift_vaddr,
        )
        for n in lib.move.sections
    }
    shdrs[lib.dynstr_index] = lib.dynstr._replace(
        offset=blob.offset + blob.dynstr_at, addr=blob.vaddr + blob.dynstr_at, size=blob.strsz
    )
    shdrs[lib.dynamic_index] = lib.dynamic._replace(
        offset=blob.offset + blob.dynamic_at,
        addr=blob.vaddr + blob.dynamic_at,
        size=blob.dynamic_size,
    )
    return shdrs


@dataclass(frozen=True, kw_only=True)
class _Edit:
    """Every byte the append writes, packed before the first write."""

    blob: _Blob
    tail: bytes  # written after the copied .dynstr: the RUNPATH string, padding, dynamic array
    shdrs: tuple[tuple[int, bytes], ...]  # (section index, new header)
    phdr_table: bytes  # the grown program header table
    phnum: int


def _plan_edit(lib: Library, value: bytes) -> _Edit | str:
    """Lay out the new segment and pack the new headers; why not, if a value does not fit."""
    blob = _plan_blob(lib, value)
    if isinstance(blob, str):
        return blob
    phdrs = _new_phdrs(lib, blob)
    try:
        tail = value + b"\0" + bytes(blob.dynamic_at - blob.dynstr_at - blob.strsz)
        tail += b"".join(DYN.pack(tag, val) for tag, val in blob.entries)
        shdrs = tuple((n, SHDR.pack(*sh)) for n, sh in sorted(_new_shdrs(lib, blob).items()))
        table = b"".join(PHDR.pack(*ph) for ph in phdrs)
    except struct.error:
        return "a moved header or dynamic entry would not fit in its ELF64 field"
    return _Edit(blob=blob, tail=tail, shdrs=shdrs, phdr_table=table, phnum=len(phdrs))


def _append(fd: int, lib: Library, edit: _Edit) -> None:
    # Everything past the old end of the file first, then the headers that point to it; the
    # grown program header table last, over the displaced sections' old bytes.
    move, blob = lib.move, edit.blob
    _copy(fd, move.start, blob.offset + blob.moved_at, move.end - move.start)
    _copy(fd, lib.dynstr.offset, blob.offset + blob.dynstr_at, lib.dynstr.size)
    pwrite(fd, edit.tail, blob.offset + blob.dynstr_at + lib.dynstr.size)
    for n, header in edit.shdrs:
        pwrite(fd, header, lib.shoff + n * SHDR.size)
    pwrite(fd, edit.phdr_table, lib.phoff)
    vacated = lib.phoff + len(edit.phdr_table)
    for at in range(vacated, move.end, CHUNK):  # what is left of the moved sections' old bytes
        pwrite(fd, bytes(min(CHUNK, move.end - at)), at)
    pwrite(fd, struct.pack("<H", edit.phnum), E_PHNUM)


def _copy(fd: int, source: int, target: int, length: int) -> None:
    """Copy ``length`` bytes within the file, in bounded chunks (the ranges do not overlap)."""
    for done in range(0, length, CHUNK):
        pwrite(fd, pread(fd, min(CHUNK, length - done), source + done), target + done)
