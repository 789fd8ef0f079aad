"""What wheelyard needs to know about ELF files; the only module that uses pyelftools.

Every function takes a path and reads only what it needs (ELF header, program and section
headers, the dynamic array, the dynamic string table and the symbol-version sections) through
pyelftools' stream reader, so even a 1.3 GB library costs a few kilobytes of reads. Files that do
not start with the ELF magic (linker scripts named ``libfoo.so``, empty files, text) are not ELF:
:func:`read_elf` returns ``None`` for them. A file that starts with the magic but cannot be parsed
(truncated, corrupt) raises :class:`~wheelyard.errors.ElfError` naming the file.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.dynamic import DynamicSegment, DynamicTag
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

from wheelyard.errors import ElfError

ELF_MAGIC = b"\x7fELF"

# Dynamic tags that rpath.py edits.
DT_NULL = 0
DT_RPATH = 15
DT_RUNPATH = 29
# Tags whose value is an offset into the dynamic string table (besides RPATH/RUNPATH).
_STRING_TAGS = frozenset(
    {
        "DT_NEEDED",
        "DT_SONAME",
        "DT_AUXILIARY",
        "DT_FILTER",
        "DT_CONFIG",
        "DT_DEPAUDIT",
        "DT_AUDIT",
        "DT_SUNW_FILTER",
    }
)

_TAG_STRING = {
    "DT_NEEDED": "needed",
    "DT_SONAME": "soname",
    "DT_RPATH": "rpath",
    "DT_RUNPATH": "runpath",
}
# e_machine -> the architecture name used in wheel platform tags.
_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_386": "i686",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "armv7l",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
    "EM_AMDGPU": "amdgpu",
}
_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)")
_PARSE_ERRORS = (ELFError, ConstructError, struct.error, ValueError, EOFError, UnicodeError)
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
class DynamicLayout:
    """Where the dynamic array and string table sit in the file, for in-place edits."""

    little_endian: bool
    bits: int
    e_machine: str
    file_size: int
    segments: tuple[Segment, ...]
    dynamic_offset: int | None  # file offset of PT_DYNAMIC, None for static files
    dynamic_size: int  # PT_DYNAMIC p_filesz
    entry_size: int  # size of one Elf_Dyn entry (16 on 64-bit, 8 on 32-bit)
    strtab_offset: int | None  # file offset of DT_STRTAB
    strtab_size: int  # DT_STRSZ


def is_elf(path: Path) -> bool:
    """Whether ``path`` is a regular file (or a link to one) starting with the ELF magic."""
    if not path.is_file():
        return False
    with open(path, "rb") as stream:
        return stream.read(4) == ELF_MAGIC


def read_elf(path: Path) -> ElfInfo | None:
    """Read the :class:`ElfInfo` of ``path``; ``None`` if it is not an ELF file."""
    with _open(path) as parsed:
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
    elf: ELFFile
    segments: tuple[Segment, ...]
    dynamic: DynamicSegment | None


@contextmanager
def _open(path: Path) -> Iterator[_Parsed | None]:
    if not is_elf(path):
        yield None
        return
    with open(path, "rb") as stream:
        try:
            elf = ELFFile(stream)
            segments = _segments(elf)
            _check_tables_in_file(elf, segments)
            yield _Parsed(elf=elf, segments=segments, dynamic=_dynamic(elf))
        except _PARSE_ERRORS as exc:
            raise ElfError(path, f"cannot be parsed: {exc}", hint=_CORRUPT_HINT) from None


def _check_tables_in_file(elf: ELFFile, segments: tuple[Segment, ...]) -> None:
    size = elf.stream_len
    header = elf.header
    if header["e_phnum"] and header["e_phoff"] + header["e_phnum"] * header["e_phentsize"] > size:
        raise ELFError(f"program headers end past the end of the file ({size} bytes)")
    if header["e_shnum"] and header["e_shoff"] + header["e_shnum"] * header["e_shentsize"] > size:
        raise ELFError(f"section headers end past the end of the file ({size} bytes)")
    for seg in segments:
        if seg.kind in ("PT_LOAD", "PT_DYNAMIC") and seg.offset + seg.filesz > size:
            raise ELFError(f"{seg.kind} at offset {seg.offset:#x} ends past the end of the file")


def _segments(elf: ELFFile) -> tuple[Segment, ...]:
    segments = []
    for segment in elf.iter_segments():
        kind = segment["p_type"]
        segments.append(
            Segment(
                kind=kind if isinstance(kind, str) else f"{kind:#x}",
                offset=segment["p_offset"],
                filesz=segment["p_filesz"],
                vaddr=segment["p_vaddr"],
                memsz=segment["p_memsz"],
            )
        )
    return tuple(segments)


def _dynamic(elf: ELFFile) -> DynamicSegment | None:
    for segment in elf.iter_segments("PT_DYNAMIC"):
        if isinstance(segment, DynamicSegment) and segment["p_filesz"]:
            return segment
    return None


def _tags(parsed: _Parsed) -> Iterator[DynamicTag]:
    """The dynamic entries up to DT_NULL, never reading past the end of PT_DYNAMIC."""
    dynamic = parsed.dynamic
    if dynamic is None:
        return
    for n in range(dynamic["p_filesz"] // parsed.elf.structs.Elf_Dyn.sizeof()):
        tag = dynamic.get_tag(n)
        if tag.entry.d_tag == "DT_NULL":
            return
        yield tag


def _machine(elf: ELFFile) -> str:
    e_machine: Any = elf.header["e_machine"]
    if not isinstance(e_machine, str):
        return f"machine-{e_machine}"
    if e_machine == "EM_PPC64":
        return "ppc64le" if elf.little_endian else "ppc64"
    return _MACHINES.get(e_machine, e_machine.removeprefix("EM_").lower())


def _info(parsed: _Parsed) -> ElfInfo:
    elf = parsed.elf
    soname: str | None = None
    needed: list[str] = []
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    for tag in _tags(parsed):
        kind = tag.entry.d_tag
        if kind not in _TAG_STRING:
            continue
        # pyelftools resolves these tags' strings into attributes named after the tag.
        value = str(getattr(tag, _TAG_STRING[kind]))
        # When a tag repeats, the loader keeps the last one; so do we.
        if kind == "DT_NEEDED":
            needed.append(value)
        elif kind == "DT_SONAME":
            soname = value
        elif kind == "DT_RPATH":
            rpath = tuple(value.split(":"))
        else:
            runpath = tuple(value.split(":"))
    return ElfInfo(
        machine=_machine(elf),
        bits=elf.elfclass,
        elf_type=str(elf.header["e_type"]),
        is_executable=any(seg.kind == "PT_INTERP" for seg in parsed.segments),
        soname=soname,
        needed=tuple(needed),
        rpath=rpath,
        runpath=runpath,
        glibc=_newest_glibc(elf),
    )


def _newest_glibc(elf: ELFFile) -> tuple[int, int] | None:
    newest: tuple[int, int] | None = None
    for section in elf.iter_sections("SHT_GNU_verneed"):
        if not isinstance(section, GNUVerNeedSection):
            continue
        for _verneed, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                match = _GLIBC.match(aux.name)
                if match:
                    version = (int(match[1]), int(match[2]))
                    newest = version if newest is None else max(newest, version)
    return newest


def _layout(parsed: _Parsed) -> DynamicLayout:
    elf, dynamic = parsed.elf, parsed.dynamic
    strtab_offset: int | None = None
    strtab_size = 0
    if dynamic is not None:
        for tag in _tags(parsed):
            if tag.entry.d_tag == "DT_STRTAB":
                strtab_offset = next(elf.address_offsets(tag.entry.d_ptr), None)
            elif tag.entry.d_tag == "DT_STRSZ":
                strtab_size = tag.entry.d_val
    return DynamicLayout(
        little_endian=elf.little_endian,
        bits=elf.elfclass,
        e_machine=str(elf.header["e_machine"]),
        file_size=elf.stream_len,
        segments=parsed.segments,
        dynamic_offset=None if dynamic is None else dynamic["p_offset"],
        dynamic_size=0 if dynamic is None else dynamic["p_filesz"],
        entry_size=elf.structs.Elf_Dyn.sizeof(),
        strtab_offset=strtab_offset,
        strtab_size=strtab_size,
    )


def _dynstr_references(parsed: _Parsed) -> set[int] | None:
    elf = parsed.elf
    layout = _layout(parsed)
    if layout.strtab_offset is None or elf.num_sections() == 0:
        return None
    dynstr_index = next(
        (
            n
            for n, section in enumerate(elf.iter_sections())
            if section["sh_type"] == "SHT_STRTAB" and section["sh_offset"] == layout.strtab_offset
        ),
        None,
    )
    if dynstr_index is None:
        return None
    refs = {t.entry.d_val for t in _tags(parsed) if t.entry.d_tag in _STRING_TAGS}
    for section in elf.iter_sections():
        if section["sh_link"] != dynstr_index or section["sh_type"] == "SHT_NOBITS":
            continue
        kind = section["sh_type"]
        if kind == "SHT_DYNAMIC":
            continue  # the same entries as PT_DYNAMIC, counted above
        if kind == "SHT_DYNSYM":
            refs.update(
                _symbol_names(elf, section["sh_offset"], section["sh_size"], section["sh_entsize"])
            )
        elif isinstance(section, GNUVerNeedSection):
            for verneed, auxiliaries in section.iter_versions():
                refs.add(verneed["vn_file"])
                refs.update(aux["vna_name"] for aux in auxiliaries)
        elif isinstance(section, GNUVerDefSection):
            for _verdef, auxiliaries in section.iter_versions():
                refs.update(aux["vda_name"] for aux in auxiliaries)
        else:
            return None  # an unknown user of the table: do not guess
    return refs


def _symbol_names(elf: ELFFile, offset: int, size: int, entsize: int) -> Iterator[int]:
    """``st_name`` of every symbol of a symbol table, read in chunks (it can be megabytes)."""
    if entsize <= 0:
        return
    fmt = ("<" if elf.little_endian else ">") + "I" + "x" * (entsize - 4)
    per_chunk = max(1, (1 << 20) // entsize)
    stream = elf.stream
    done = 0
    count = size // entsize
    while done < count:
        batch = min(per_chunk, count - done)
        stream.seek(offset + done * entsize)
        data = stream.read(batch * entsize)
        if len(data) != batch * entsize:
            raise ELFError("dynamic symbol table ends past the end of the file")
        for (name,) in struct.iter_unpack(fmt, data):
            yield name
        done += batch
