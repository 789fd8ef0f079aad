"""Give a shared library a new RUNPATH by appending to it, without reading the whole file.

A new RUNPATH string needs room in the dynamic string table, and the table cannot grow where it
is. patchelf solves this by rewriting the whole file in memory (twice the file's size for a
library, 661 MiB for a 330 MiB one). :func:`append_runpath` does what patchelf does for shared
libraries, but by streaming: it appends to the end of the file

- a copy of ``.dynstr`` followed by the new RUNPATH string,
- a new dynamic array (8-aligned): the old entries without DT_RPATH/DT_RUNPATH, DT_STRTAB and
  DT_STRSZ pointing at the new string table, one DT_RUNPATH, then DT_NULL and two spare DT_NULLs,
- a new program header table (8-aligned): the old entries with PT_DYNAMIC pointing at the new
  array, plus one new read-write PT_LOAD (glibc writes relocated addresses into the dynamic
  array) covering all three, placed above every segment's end and congruent to its file offset
  modulo the largest PT_LOAD alignment; it goes right after the last PT_LOAD, so PT_LOAD entries
  stay sorted by address, and the program header table lies in it, so the loader maps it too,

then patches ``e_phoff``/``e_phnum`` in the ELF header and the section headers of ``.dynstr`` and
``.dynamic`` in place. The old string table and dynamic array stay where they were, unused.
Memory is bounded by the size of the headers and the dynamic array (the string table is copied in
1 MiB chunks); the file is only ever written at known offsets or past its end.

Only ELF64 little-endian ET_DYN files without PT_INTERP and without PT_PHDR qualify (shared
libraries, not executables: the kernel derives AT_PHDR of an executable in ways that differ
between versions, and old kernels crashed on moved program headers), with one PT_DYNAMIC and
section headers naming ``.dynamic`` and ``.dynstr`` consistently with the dynamic array.
Everything else is left to patchelf (:mod:`wheelyard.rpath`), which also verifies the result of
both paths.

The loader, ``ld``, patchelf and ``llvm-strip`` handle the result; GNU ``strip``/``objcopy``
(binutils 2.40) expect the program header table at the start of the file and write a library
that crashes when loaded.
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
_SHT_STRTAB = 3
_SHT_DYNAMIC = 6
_DT_NULL = 0
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_RPATH = 15
_DT_RUNPATH = 29
_SPARE_NULLS = 2  # beyond the terminator: room for a later edit to add an entry in place
_PAGE = 4096  # the smallest page size the new segment is aligned to
_MAX_FILE_ALIGN = 1 << 16  # pad the file to at most this much (64 KiB pages); the rest is vaddr
_CHUNK = 1 << 20

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_DYN = struct.Struct("<qQ")
_E_PHOFF = 32  # byte offsets of the ELF64 header fields patched in place
_E_PHNUM = 56


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
class _Library:
    """What the append needs from a qualifying file."""

    size: int
    phdrs: tuple[_Phdr, ...]
    shoff: int
    dynamic_index: int  # section header index of .dynamic
    dynamic: _Shdr
    dynstr_index: int
    dynstr: _Shdr
    entries: tuple[tuple[int, int], ...]  # the dynamic array up to (without) DT_NULL


def unsupported(path: Path) -> str | None:
    """Why ``path`` cannot get an appended RUNPATH; ``None`` when it can."""
    fd = os.open(path, os.O_RDONLY)
    try:
        found = _inspect(fd)
    finally:
        os.close(fd)
    return found if isinstance(found, str) else None


def append_runpath(path: Path, value: str) -> bool:
    """Make ``value`` the only DT_RUNPATH of ``path`` (and drop DT_RPATH) by appending.

    Returns ``False``, leaving the file untouched, when it does not qualify (see the module
    docstring). ``path`` must be a private copy: it is edited in place. The caller verifies the
    result.
    """
    if not value or "\0" in value or not value.isascii():
        raise ValueError(f"invalid RUNPATH value {value!r}")
    fd = os.open(path, os.O_RDWR)
    try:
        found = _inspect(fd)
        if isinstance(found, str):
            return False
        _append(fd, found, value.encode("ascii"))
    finally:
        os.close(fd)
    return True


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
    return _Library(
        size=size,
        phdrs=phdrs,
        shoff=shoff,
        dynamic_index=dynamic_index,
        dynamic=dynamic,
        dynstr_index=dynstr_index,
        dynstr=dynstr,
        entries=tuple(entries),
    )


def _append(fd: int, lib: _Library, value: bytes) -> None:
    loads = [ph for ph in lib.phdrs if ph.type == _PT_LOAD]
    align = max(_PAGE, *(ph.align for ph in loads))
    # The new segment's first page must share no page with any segment below it, whatever the
    # page size up to ``align``; its file offset and address are congruent modulo ``align``.
    blob_offset = _round_up(lib.size, min(align, _MAX_FILE_ALIGN))
    top = max(ph.vaddr + ph.memsz for ph in lib.phdrs)
    blob_vaddr = _round_up(top, align) + blob_offset % align

    # The blob: string table, dynamic array (8-aligned), program header table (8-aligned).
    strsz = lib.dynstr.size + len(value) + 1
    dynamic_at = _round_up(strsz, 8)
    entries = [
        (tag, blob_vaddr if tag == _DT_STRTAB else strsz if tag == _DT_STRSZ else val)
        for tag, val in lib.entries
        if tag not in (_DT_RPATH, _DT_RUNPATH)
    ]
    entries.append((_DT_RUNPATH, lib.dynstr.size))
    entries += [(_DT_NULL, 0)] * (1 + _SPARE_NULLS)
    dynamic_size = len(entries) * _DYN.size
    phdrs_at = _round_up(dynamic_at + dynamic_size, 8)
    blob_size = phdrs_at + (len(lib.phdrs) + 1) * _PHDR.size

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
        if ph.type != _PT_DYNAMIC:
            phdrs.append(ph)
        else:
            phdrs.append(
                ph._replace(
                    offset=blob_offset + dynamic_at,
                    vaddr=blob_vaddr + dynamic_at,
                    paddr=blob_vaddr + dynamic_at,
                    filesz=dynamic_size,
                    memsz=dynamic_size,
                )
            )
        if n == last_load:
            phdrs.append(new_load)

    # Everything past the old end of the file first, then the headers that point to it.
    for done in range(0, lib.dynstr.size, _CHUNK):
        length = min(_CHUNK, lib.dynstr.size - done)
        data = _pread(fd, length, lib.dynstr.offset + done)
        _pwrite(fd, data, blob_offset + done)
    tail = value + b"\0" + bytes(dynamic_at - strsz)
    tail += b"".join(_DYN.pack(tag, val) for tag, val in entries)
    tail += bytes(phdrs_at - dynamic_at - dynamic_size)
    tail += b"".join(_PHDR.pack(*ph) for ph in phdrs)
    _pwrite(fd, tail, blob_offset + lib.dynstr.size)

    dynstr = lib.dynstr._replace(offset=blob_offset, addr=blob_vaddr, size=strsz)
    dynamic = lib.dynamic._replace(
        offset=blob_offset + dynamic_at, addr=blob_vaddr + dynamic_at, size=dynamic_size
    )
    _pwrite(fd, _SHDR.pack(*dynstr), lib.shoff + lib.dynstr_index * _SHDR.size)
    _pwrite(fd, _SHDR.pack(*dynamic), lib.shoff + lib.dynamic_index * _SHDR.size)
    _pwrite(fd, struct.pack("<Q", blob_offset + phdrs_at), _E_PHOFF)
    _pwrite(fd, struct.pack("<H", len(phdrs)), _E_PHNUM)


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
