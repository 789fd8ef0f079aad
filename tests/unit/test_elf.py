from __future__ import annotations

import io
import platform
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _elfbuild import (
    BASE_C,
    BASELINE_GLIBC,
    DEP_C,
    MAIN_C,
    OLD_GLIBC_C,
    PHDR_FIELDS,
    compile_elf,
    dynamic_entry,
    patch,
    patch_header,
    program_header,
)

from wheelyard.elf import parse
from wheelyard.elf import read as elf
from wheelyard.errors import ElfError

MACHINE = platform.machine()
BITS = struct.calcsize("P") * 8


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("elf")
    base = compile_elf(root / "deps" / "libbase.so.1", BASE_C, soname="libbase.so.1")
    files = {
        "base": base,
        "nosoname": compile_elf(root / "libnosoname.so", BASE_C),
        "runpath": compile_elf(
            root / "librunpath.so", DEP_C, soname="libdep.so.1", needs=[base], rpath="/opt/x/lib"
        ),
        "rpath": compile_elf(
            root / "librpath.so",
            DEP_C,
            needs=[base],
            rpath="/opt/a:/opt/b",
            new_dtags=False,
        ),
        "oldglibc": compile_elf(root / "libold.so", OLD_GLIBC_C, soname="libold.so.1"),
        "exe": compile_elf(
            root / "prog",
            MAIN_C,
            shared=False,
            needs=[
                compile_elf(
                    root / "deps" / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base]
                )
            ],
        ),
    }
    (root / "object.c").write_text(BASE_C)
    subprocess.run(["gcc", "-c", "-o", root / "object.o", root / "object.c"], check=True)
    files["object"] = root / "object.o"
    return files


def test_shared_library_with_soname(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["base"])
    assert info == elf.ElfInfo(
        machine=MACHINE,
        bits=BITS,
        elf_type="ET_DYN",
        is_executable=False,
        soname="libbase.so.1",
        needed=(),
        rpath=(),
        runpath=(),
        glibc=None,
    )


def test_library_without_soname(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["nosoname"])
    assert info is not None
    assert info.soname is None
    assert info.elf_type == "ET_DYN"


def test_runpath_and_needed(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["runpath"])
    assert info is not None
    assert info.needed == ("libbase.so.1",)
    assert info.runpath == ("/opt/x/lib",)
    assert info.rpath == ()


def test_rpath_is_told_apart_from_runpath(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["rpath"])
    assert info is not None
    assert info.rpath == ("/opt/a", "/opt/b")
    assert info.runpath == ()


def test_executable_needs_glibc_2_34(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["exe"])
    assert info is not None
    assert info.is_executable
    assert info.soname is None
    assert info.needed[0] == "libdep.so.1"
    assert "libc.so.6" in info.needed
    # __libc_start_main@GLIBC_2.34 in every executable linked against glibc >= 2.34.
    assert info.glibc == (2, 34)


def test_library_needing_only_the_baseline_glibc(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["oldglibc"])
    assert info is not None
    assert info.needed == ("libc.so.6",)
    assert info.glibc == BASELINE_GLIBC[MACHINE]


def test_relocatable_object(built: dict[str, Path]) -> None:
    info = elf.read_elf(built["object"])
    assert info is not None
    assert info.elf_type == "ET_REL"
    assert info.needed == ()
    assert not info.is_executable


def test_linker_script_named_so_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "libc.so"
    script.write_text("/* GNU ld script */\nGROUP ( libc.so.6 libc_nonshared.a )\n")
    assert not elf.is_elf(script)
    assert elf.read_elf(script) is None
    assert elf.read_layout(script) is None


@pytest.mark.parametrize("content", [b"", b"\x7fEL", b"#!/bin/sh\necho hi\n"])
def test_short_and_text_files_are_not_elf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "libempty.so"
    path.write_bytes(content)
    assert not elf.is_elf(path)
    assert elf.read_elf(path) is None


def test_directories_and_dangling_links_are_not_elf(tmp_path: Path) -> None:
    (tmp_path / "dir.so").mkdir()
    (tmp_path / "dangling.so").symlink_to("missing.so.1")
    assert elf.read_elf(tmp_path / "dir.so") is None
    assert elf.read_elf(tmp_path / "dangling.so") is None


def test_symlink_to_elf_is_read(built: dict[str, Path], tmp_path: Path) -> None:
    link = tmp_path / "libbase.so"
    link.symlink_to(built["base"])
    info = elf.read_elf(link)
    assert info is not None
    assert info.soname == "libbase.so.1"


@pytest.mark.parametrize("keep", [20, 100, 0.5, 0.9])
def test_truncated_elf_is_an_error_naming_the_file(
    built: dict[str, Path], tmp_path: Path, keep: float
) -> None:
    data = built["runpath"].read_bytes()
    size = int(keep) if keep >= 1 else int(len(data) * keep)
    cut = tmp_path / "libcut.so.1"
    cut.write_bytes(data[:size])
    assert elf.is_elf(cut)
    with pytest.raises(ElfError, match=r"libcut\.so\.1.*(past the end|cannot be parsed)"):
        elf.read_elf(cut)


def test_garbage_after_magic_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "libbad.so"
    bad.write_bytes(b"\x7fELF" + b"\xff" * 200)
    with pytest.raises(ElfError, match="libbad.so"):
        elf.read_elf(bad)


class _CountingReader(io.FileIO):
    total = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        _CountingReader.total += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        _CountingReader.total += count
        return count


def test_reads_only_headers_of_a_large_file(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "libbig.so"
    big.write_bytes(built["runpath"].read_bytes())
    with open(big, "r+b") as handle:  # a sparse 256 MiB tail, as after a huge .text
        handle.truncate(256 << 20)

    def counting_open(path: Path, mode: str = "r") -> _CountingReader:
        assert mode == "rb"
        return _CountingReader(path, "r")

    monkeypatch.setattr(elf, "open", counting_open, raising=False)
    _CountingReader.total = 0
    info = elf.read_elf(big)
    elf.read_layout(big)
    assert info is not None
    assert info.runpath == ("/opt/x/lib",)
    assert 0 < _CountingReader.total < 256 << 10


def test_layout_of_a_sound_library(built: dict[str, Path]) -> None:
    layout = elf.read_layout(built["runpath"])
    assert layout is not None
    assert layout.dynamic_offset is not None
    assert layout.strtab_offset is not None
    assert layout.entry_size == (16 if BITS == 64 else 8)
    assert layout.file_size == built["runpath"].stat().st_size
    assert elf.layout_problems(layout) == ()


def test_layout_problems_are_reported() -> None:
    load = elf.Segment(kind="PT_LOAD", offset=0, filesz=0x1000, vaddr=0, memsz=0x1000)
    outside = elf.Segment(kind="PT_DYNAMIC", offset=0x2000, filesz=0x100, vaddr=0x2000, memsz=0x100)
    phdr = elf.Segment(kind="PT_PHDR", offset=0x40, filesz=0x100, vaddr=0x1040, memsz=0x100)
    layout = elf.DynamicLayout(
        little_endian=True,
        bits=64,
        e_machine="EM_X86_64",
        file_size=0x1800,
        segments=(load, outside, phdr),
        dynamic_offset=0x2000,
        dynamic_size=0x100,
        entry_size=16,
        strtab_offset=None,
        strtab_size=0,
    )
    problems = elf.layout_problems(layout)
    assert any("PT_DYNAMIC" in p and "past the end" in p for p in problems)
    assert any("PT_DYNAMIC" in p and "not inside a PT_LOAD" in p for p in problems)
    # PT_PHDR inside the load's file range but at the wrong address is not covered either.
    assert any("PT_PHDR" in p for p in problems)


def test_dynstr_references_see_merged_string_tails(tmp_path: Path) -> None:
    base = compile_elf(tmp_path / "libbase.so.1", BASE_C, soname="libbase.so.1")
    # GNU ld stores NEEDED "libbase.so.1" as the tail of the RUNPATH string.
    lib = compile_elf(tmp_path / "libtail.so", DEP_C, needs=[base], rpath="/x/libbase.so.1")
    layout = elf.read_layout(lib)
    assert layout is not None
    assert layout.strtab_offset is not None
    with open(lib, "rb") as handle:
        handle.seek(layout.strtab_offset)
        table = handle.read(layout.strtab_size)
    start = table.index(b"/x/libbase.so.1\0")
    refs = elf.dynstr_references(lib, start, start + len("/x/libbase.so.1"))
    assert refs == frozenset({start + len("/x/")})


# Hostile input: every size and count comes from a header and is checked before it is used.


@pytest.fixture
def victim(built: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "libvictim.so.1"
    shutil.copy(built["oldglibc"], copy)  # has version needs, symbols and section headers
    return copy


def _every_reader(path: Path, message: str) -> None:
    readers: list[Callable[[Path], object]] = [
        elf.read_elf,
        elf.read_layout,
        lambda p: elf.dynstr_references(p, 0, 1 << 40),
    ]
    for read in readers:
        with pytest.raises(ElfError, match=rf"libvictim\.so\.1: cannot be parsed: .*{message}"):
            read(path)


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        (".dynsym", "sh_entsize", 1 << 40, "a symbol table.* sh_entsize 1099511627776, not 24"),
        (".dynsym", "sh_entsize", 0, "sh_entsize 0, not 24"),
        (".comment", "sh_entsize", 1 << 50, "sh_entsize 1125899906842624, larger than the file"),
        (".dynstr", "sh_size", 1 << 62, "section .* past the end of the file"),
        (".gnu.version_r", "sh_offset", (1 << 64) - 1, "past the end of the file"),
        (".dynamic", "sh_link", 0xFFFF, "links to section 65535, which does not exist"),
        ("", "sh_size", 1 << 40, None),  # extended numbering, with e_shnum = 0 below
    ],
)
def test_absurd_section_header_is_a_clean_error(
    victim: Path, section: str, field: str, value: int, message: str | None
) -> None:
    patch_header(victim, field, value, section=section)
    if message is None:
        patch_header(victim, "e_shnum", 0)
        message = "1099511627776 section headers"
    _every_reader(victim, message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("e_shnum", 0xFFFF, "section header table of 65535 entries"),
        ("e_shoff", 1 << 62, "section header table"),
        ("e_shentsize", 1 << 15, "e_shentsize is 32768, not 64"),
        ("e_phnum", 0xFFFF, "extended program header numbering"),
        ("e_phnum", 0xFFFE, "program header table of 65534 entries .* ends past the end"),
        ("e_phoff", (1 << 64) - 1, "program header table"),
    ],
)
def test_absurd_elf_header_is_a_clean_error(
    victim: Path, field: str, value: int, message: str
) -> None:
    patch_header(victim, field, value)
    _every_reader(victim, message)


def test_dynamic_array_larger_than_the_cap_is_refused(victim: Path) -> None:
    with open(victim, "r+b") as handle:  # room for it, as sparse zeros
        handle.truncate(2 * elf.MAX_DYNAMIC_SIZE)
    offset, fmt = PHDR_FIELDS["p_filesz"]
    patch(victim, program_header(victim, 2) + offset, fmt, elf.MAX_DYNAMIC_SIZE + 16)
    _every_reader(victim, "PT_DYNAMIC is 1048592 bytes .more than 1048576.")


def test_string_offsets_must_stay_inside_the_string_table(victim: Path) -> None:
    patch(victim, dynamic_entry(victim, 1), "<Q", 1 << 40)  # DT_NEEDED
    with pytest.raises(ElfError, match=r"DT_NEEDED string offset 0x10000000000 is past"):
        elf.read_elf(victim)


def test_string_without_nul_inside_its_table_is_refused(victim: Path) -> None:
    layout = elf.read_layout(victim)
    assert layout is not None
    assert layout.strtab_offset is not None
    last = layout.strtab_size - 1
    patch(victim, layout.strtab_offset + last, "<B", ord("x"))
    patch(victim, dynamic_entry(victim, 1), "<Q", last)
    with pytest.raises(ElfError, match=r"DT_NEEDED string at offset .* has no NUL within 1 bytes"):
        elf.read_elf(victim)


def test_string_table_outside_every_segment_is_refused(victim: Path) -> None:
    patch(victim, dynamic_entry(victim, 5), "<Q", 1 << 50)  # DT_STRTAB
    with pytest.raises(ElfError, match="no string table"):
        elf.read_elf(victim)


def test_version_chains_cannot_run_past_their_table(tmp_path: Path) -> None:
    # A version need claiming 65535 auxiliaries, each pointing 16 bytes further on.
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    table = struct.pack("<HHIII", 1, 0xFFFF, 0, 16, 0)
    table += struct.pack("<IHHII", 0, 0, 0, 0, 16) * 4
    path = tmp_path / "chain"
    path.write_bytes(bytes(header) + table)
    with open(path, "rb") as stream:
        bounded = parse.BoundedFile(stream, path.stat().st_size)
        with pytest.raises(parse.Malformed, match="outside its table"):
            list(parse.verneed(bounded, (64, 64 + len(table)), None))
        # A count of needs larger than the table holds stops at the table's end too.
        looping = struct.pack("<HHIII", 1, 0, 0, 0, 16) * 4
        path.write_bytes(bytes(header) + looping)
        with pytest.raises(parse.Malformed, match="outside its table"):
            list(parse.verneed(bounded, (64, 64 + len(looping)), 1 << 32))


def test_corrupting_any_header_field_gives_an_error_or_a_result(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """Every 8-byte field of the headers and dynamic array, set to absurd values."""
    data = built["oldglibc"].read_bytes()
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phnum, _, shnum = struct.unpack_from("<HHH", data, 56)
    layout = elf.read_layout(built["oldglibc"])
    assert layout is not None
    assert layout.dynamic_offset is not None
    regions = [
        (0, 64),
        (phoff, phoff + phnum * 56),
        (shoff, shoff + shnum * 64),
        (layout.dynamic_offset, layout.dynamic_offset + layout.dynamic_size),
    ]
    target = tmp_path / "libmutant.so"
    read = 0
    messages: list[str] = []
    for start, end in regions:
        for at in range(start, end, 8):
            for value in (0, (1 << 64) - 1):
                mutant = bytearray(data)
                mutant[at : at + 8] = value.to_bytes(8, "little")
                target.write_bytes(mutant)
                try:
                    elf.read_elf(target)
                    elf.read_layout(target)
                    elf.dynstr_references(target, 0, 1 << 40)
                except ElfError as exc:
                    messages.append(str(exc))
                else:
                    read += 1
    assert len(messages) > 100
    assert read > 100
    assert all(message.startswith(f"ELF file {target}: cannot be parsed: ") for message in messages)
