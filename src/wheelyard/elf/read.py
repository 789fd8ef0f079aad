"""What wheelyard needs to know about ELF files, read with every size checked before use.

Every function takes a path and reads only what it needs: the ELF header, the program headers,
the dynamic array, single strings of the dynamic string table and the version needs, and the
section headers (checked, and for :func:`dynstr_references` the version sections and dynamic
symbol names they point to). Even a 1.3 GB library costs a few kilobytes of reads.

Nothing in the file is trusted (see :mod:`wheelyard.elf.parse`): every table's place and size
come from a header and are checked against the file's size before a byte of it is read, entry
sizes must be the ones the ELF class defines, and counts are capped. Strings of the dynamic array
are found the way the loader finds them, through DT_STRTAB/DT_STRSZ and the PT_LOAD segments,
never through section headers (which the loader ignores, so they could tell another story).

Files that do not start with the ELF magic (linker scripts named ``libfoo.so``, empty files,
text) are not ELF: :func:`read_elf` returns ``None`` for them. A file that starts with the magic
but is truncated, corrupt or absurd raises :class:`~wheelyard.errors.ElfError` naming the file.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE

from wheelyard.elf.parse import (
    MAX_DYNAMIC_SIZE,
    BoundedFile,
    Malformed,
    Segment,
    symbol_names,
    verdef_names,
    verneed,
)
from wheelyard.errors import ElfError
from wheelyard.report import printable

__all__ = [
    "ELF_MAGIC",
    "MAX_DYNAMIC_SIZE",
    "DynamicLayout",
    "ElfInfo",
    "Segment",
    "dynstr_references",
    "is_elf",
    "layout_problems",
    "read_elf",
    "read_layout",
]

ELF_MAGIC = b"\x7fELF"

# Dynamic tags.
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF
# Tags whose value is an offset into the dynamic string table (besides RPATH/RUNPATH):
# NEEDED, SONAME, SUNW_FILTER, CONFIG, DEPAUDIT, AUDIT, AUXILIARY, FILTER.
_STRING_TAGS = frozenset(
    {DT_NEEDED, DT_SONAME, 0x6000000F, 0x6FFFFEFA, 0x6FFFFEFB, 0x6FFFFEFC, 0x7FFFFFFD, 0x7FFFFFFF}
)
_TAG_NAMES = {
    DT_NEEDED: "DT_NEEDED",
    DT_SONAME: "DT_SONAME",
    DT_RPATH: "DT_RPATH",
    DT_RUNPATH: "DT_RUNPATH",
}
_SHT_STRTAB = 3
_SHT_DYNAMIC = 6
_SHT_NOBITS = 8
_SHT_DYNSYM = 11
_SHT_GNU_VERDEF = 0x6FFFFFFD
_SHT_GNU_VERNEED = 0x6FFFFFFE
_VERNEED_SIZE = 16

# e_machine -> the architecture name used in wheel platform tags.
_MACHINES = {
    62: "x86_64",
    3: "i686",
    183: "aarch64",
    40: "armv7l",
    22: "s390x",
    243: "riscv64",
    258: "loongarch64",
    224: "amdgpu",
}
_EM_PPC64 = 21
_MACHINE_NAMES = {v: k for k, v in reversed(list(ENUM_E_MACHINE.items())) if isinstance(v, int)}
_TYPE_NAMES = {v: k for k, v in ENUM_E_TYPE.items() if isinstance(v, int)}
_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)")
_CORRUPT_HINT = "the file is truncated or corrupt; rebuild or re-download the artifact holding it"


@dataclass(frozen=True, kw_only=True)
class ElfInfo:
    """The facts about one ELF file that packaging decisions depend on."""

    machine: str  # "x86_64", "aarch64", "amdgpu" (GPU code objects), ...
    bits: int  # 32 or 64
    elf_type: str  # "ET_DYN" / "ET_EXEC" / "ET_REL"
    is_executable: bool  # has PT_INTERP (PIE executables are ET_DYN too)
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]  # DT_RPATH split at ":"; () when the tag is absent
    runpath: tuple[str, ...]  # DT_RUNPATH split at ":"; () when the tag is absent
    glibc: tuple[int, int] | None  # newest GLIBC_x.y in the version needs, None if none


@dataclass(frozen=True, kw_only=True)
class DynamicLayout:
    """Where the dynamic array and string table sit in the file, for in-place edits."""

    little_endian: bool
    bits: int
    e_machine: str
    file_size: int
    segments: tuple[Segment, ...]
    dynamic_offset: int | None  # file offset of PT_DYNAMIC, None for static files
    dynamic_size: int  # PT_DYNAMIC p_filesz (at most MAX_DYNAMIC_SIZE)
    entry_size: int  # size of one Elf_Dyn entry (16 on 64-bit, 8 on 32-bit)
    strtab_offset: int | None  # file offset of DT_STRTAB
    strtab_size: int  # DT_STRSZ


def is_elf(path: Path) -> bool:
    """Whether ``path`` is a regular file (or a link to one) starting with the ELF magic."""
    if not path.is_file():
        return False
    with open(path, "rb") as stream:
        return stream.read(4) == ELF_MAGIC


def read_elf(path: Path, *, name: str | None = None) -> ElfInfo | None:
    """Read the :class:`ElfInfo` of ``path``; ``None`` if it is not an ELF file.

    Errors name the file ``name`` (say ``artifact/lib/libx.so``) when given, else ``path``.
    """
    with _open(path, name) as parsed:
        return None if parsed is None else _info(parsed)


def read_layout(path: Path) -> DynamicLayout | None:
    """Read the :class:`DynamicLayout` of ``path``; ``None`` if it is not an ELF file."""
    with _open(path) as parsed:
        return None if parsed is None else _layout(parsed)


def layout_problems(layout: DynamicLayout) -> tuple[str, ...]:
    """What is wrong with the program headers (empty when the loader can map the file)."""
    problems: list[str] = []
    loads = [seg for seg in layout.segments if seg.kind == "PT_LOAD"]
    for seg in layout.segments:
        end = seg.offset + seg.filesz
        if seg.kind in ("PT_LOAD", "PT_DYNAMIC", "PT_INTERP") and end > layout.file_size:
            problems.append(
                f"{seg.kind} at offset {seg.offset:#x} ends at {end:#x}, past the end of the "
                f"file ({layout.file_size:#x} bytes)"
            )
        if seg.kind in ("PT_PHDR", "PT_DYNAMIC") and not any(ld.covers(seg) for ld in loads):
            problems.append(f"{seg.kind} at offset {seg.offset:#x} is not inside a PT_LOAD segment")
    return tuple(problems)


def dynstr_references(path: Path, start: int, end: int) -> frozenset[int] | None:
    """Offsets in ``[start, end)`` of the dynamic string table that something refers to.

    Counts every user of the table except DT_RPATH/DT_RUNPATH entries: other dynamic entries,
    dynamic symbol names and symbol-version names. Linkers merge string tails, so a RUNPATH
    string may only be rewritten in place when nothing else points into it. Returns ``None``
    when the users cannot all be enumerated (no section headers, unknown linked sections).
    """
    with _open(path) as parsed:
        refs = None if parsed is None else _dynstr_references(parsed)
    if refs is None:
        return None
    return frozenset(ref for ref in refs if start <= ref < end)


@dataclass(frozen=True, kw_only=True)
class _Parsed:
    elf: BoundedFile
    dynamic: Segment | None
    entries: tuple[tuple[int, int], ...]  # the dynamic array up to (without) DT_NULL
    strtab: tuple[int, int] | None  # (file offset, size) of the dynamic string table


@contextmanager
def _open(path: Path, name: str | None = None) -> Iterator[_Parsed | None]:
    if not is_elf(path):
        yield None
        return
    with open(path, "rb") as stream:
        try:
            stream.seek(0, 2)
            elf = BoundedFile(stream, stream.tell())
            elf.check_sections()
            dynamic = next((s for s in elf.segments if s.kind == "PT_DYNAMIC" and s.filesz), None)
            entries = _dynamic_entries(elf, dynamic)
            yield _Parsed(
                elf=elf, dynamic=dynamic, entries=entries, strtab=_string_table(elf, entries)
            )
        except (Malformed, struct.error, UnicodeError) as exc:
            shown = printable(str(path) if name is None else name)
            raise ElfError(shown, f"cannot be parsed: {exc}", hint=_CORRUPT_HINT) from None


def _dynamic_entries(elf: BoundedFile, dynamic: Segment | None) -> tuple[tuple[int, int], ...]:
    """The dynamic entries up to DT_NULL, never reading past the end of PT_DYNAMIC."""
    if dynamic is None:
        return ()
    if dynamic.filesz > MAX_DYNAMIC_SIZE:
        raise Malformed(f"PT_DYNAMIC is {dynamic.filesz} bytes (more than {MAX_DYNAMIC_SIZE})")
    length = dynamic.filesz - dynamic.filesz % elf.dyn.size
    entries = []
    for tag, value in elf.dyn.iter_unpack(elf.read(dynamic.offset, length, "PT_DYNAMIC")):
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    return tuple(entries)


def _string_table(elf: BoundedFile, entries: tuple[tuple[int, int], ...]) -> tuple[int, int] | None:
    # When a tag repeats, the loader keeps the last one; so do we.
    address = next((v for t, v in reversed(entries) if t == DT_STRTAB), None)
    size = next((v for t, v in reversed(entries) if t == DT_STRSZ), None)
    if address is None or size is None:
        return None
    offset = elf.file_offset(address, size)
    return None if offset is None else (offset, size)


def _machine(elf: BoundedFile) -> str:
    if elf.e_machine == _EM_PPC64:
        return "ppc64le" if elf.little_endian else "ppc64"
    if elf.e_machine in _MACHINES:
        return _MACHINES[elf.e_machine]
    name = _MACHINE_NAMES.get(elf.e_machine)
    return name.removeprefix("EM_").lower() if name else f"machine-{elf.e_machine}"


def _info(parsed: _Parsed) -> ElfInfo:
    elf = parsed.elf
    strings: dict[int, list[str]] = {}
    for tag, value in parsed.entries:
        if tag in _TAG_NAMES:
            raw = elf.string(parsed.strtab, value, _TAG_NAMES[tag])
            try:
                strings.setdefault(tag, []).append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise Malformed(f"the {_TAG_NAMES[tag]} string {raw!r} is not UTF-8") from None
    # When a tag repeats, the loader keeps the last one; so do we (DT_NEEDED all count).
    rpath = strings.get(DT_RPATH, [])
    runpath = strings.get(DT_RUNPATH, [])
    return ElfInfo(
        machine=_machine(elf),
        bits=elf.bits,
        elf_type=_TYPE_NAMES.get(elf.e_type, str(elf.e_type)),
        is_executable=any(seg.kind == "PT_INTERP" for seg in elf.segments),
        soname=strings[DT_SONAME][-1] if DT_SONAME in strings else None,
        needed=tuple(strings.get(DT_NEEDED, [])),
        rpath=tuple(rpath[-1].split(":")) if rpath else (),
        runpath=tuple(runpath[-1].split(":")) if runpath else (),
        glibc=_newest_glibc(parsed),
    )


def _newest_glibc(parsed: _Parsed) -> tuple[int, int] | None:
    """The newest GLIBC_x.y among the version needs (DT_VERNEED, as the loader reads them)."""
    elf = parsed.elf
    address = next((v for t, v in reversed(parsed.entries) if t == DT_VERNEED), None)
    if address is None:
        return None
    count = next((v for t, v in reversed(parsed.entries) if t == DT_VERNEEDNUM), None)
    offset = elf.file_offset(address, _VERNEED_SIZE)
    segment = next(
        (
            s
            for s in elf.segments
            if s.kind == "PT_LOAD" and s.vaddr <= address < s.vaddr + s.filesz
        ),
        None,
    )
    if offset is None or segment is None:
        raise Malformed(f"DT_VERNEED {address:#x} is not inside a PT_LOAD segment")
    region = (offset, segment.offset + segment.filesz)
    newest: tuple[int, int] | None = None
    for _file, names in verneed(elf, region, count):
        for name in names:
            match = _GLIBC.match(elf.string(parsed.strtab, name, "version need").decode("latin-1"))
            if match:
                version = (int(match[1]), int(match[2]))
                newest = version if newest is None else max(newest, version)
    return newest


def _layout(parsed: _Parsed) -> DynamicLayout:
    elf, dynamic = parsed.elf, parsed.dynamic
    return DynamicLayout(
        little_endian=elf.little_endian,
        bits=elf.bits,
        e_machine=_MACHINE_NAMES.get(elf.e_machine, str(elf.e_machine)),
        file_size=elf.size,
        segments=elf.segments,
        dynamic_offset=None if dynamic is None else dynamic.offset,
        dynamic_size=0 if dynamic is None else dynamic.filesz,
        entry_size=elf.dyn.size,
        strtab_offset=None if parsed.strtab is None else parsed.strtab[0],
        strtab_size=0 if parsed.strtab is None else parsed.strtab[1],
    )


def _dynstr_references(parsed: _Parsed) -> set[int] | None:
    elf = parsed.elf
    if parsed.strtab is None or elf.shnum == 0:
        return None
    strtab_offset = parsed.strtab[0]
    dynstr_index = next(
        (s.index for s in elf.sections() if s.type == _SHT_STRTAB and s.offset == strtab_offset),
        None,
    )
    if dynstr_index is None:
        return None
    refs = {value for tag, value in parsed.entries if tag in _STRING_TAGS}
    for section in elf.sections():
        if section.link != dynstr_index or section.type in (_SHT_NOBITS, _SHT_DYNAMIC):
            continue  # SHT_DYNAMIC: the same entries as PT_DYNAMIC, counted above
        if section.type == _SHT_DYNSYM:
            refs.update(symbol_names(elf, section))
        elif section.type == _SHT_GNU_VERNEED:
            region = (section.offset, section.offset + section.size)
            for file, names in verneed(elf, region, section.info):
                refs.add(file)
                refs.update(names)
        elif section.type == _SHT_GNU_VERDEF:
            refs.update(verdef_names(elf, section))
        else:
            return None  # an unknown user of the table: do not guess
    return refs
