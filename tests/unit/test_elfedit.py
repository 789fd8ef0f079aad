"""The streaming RUNPATH append for shared libraries (wheelyard.elfedit), through rpath.set_runpath.

Every patched library is loaded in a fresh interpreter without LD_LIBRARY_PATH, so the loader
must find its dependency through the appended RUNPATH, and is read back by readelf as well as
by wheelyard's own reader. Copies run through GNU strip and patchelf must load as well.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from _elfbuild import (
    BASE_C,
    DEP_C,
    LONG_DIR,
    MAIN_C,
    PHDR_FIELDS,
    build_base,
    clean_env,
    compile_elf,
    load_in_subprocess,
    patch,
    patch_header,
    program_header,
    sha256,
    tree_with_base,
)

from wheelyard.elf import edit as elfedit
from wheelyard.elf import read as elf
from wheelyard.elf import rpath
from wheelyard.errors import ElfError

OTHER = "$ORIGIN/../other"
MIB = 1 << 20
TLS_C = (
    "int base(void);\n"
    "__thread int initialised = 1;\n"
    "__thread int zeroed;\n"
    "int tls(void) { initialised += base(); zeroed += 1; return initialised + zeroed; }\n"
)
THROW_CC = (
    "#include <stdexcept>\n"
    "#include <string>\n"
    'extern "C" int base(void);\n'
    "void throw_it(int n) { throw std::runtime_error(std::string(n + base(), 'x')); }\n"
)
CATCH_CC = (
    "#include <stdexcept>\n"
    "#include <cstring>\n"
    "void throw_it(int n);\n"
    'extern "C" int caught(void) {\n'
    "  try { throw_it(1); } catch (const std::runtime_error &e) {"
    " return static_cast<int>(std::strlen(e.what())); }\n"
    "  return -1;\n"
    "}\n"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base"), "other")


def _refuse(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"no subprocess expected, got {cmd}")


def _info(path: Path) -> elf.ElfInfo:
    info = elf.read_elf(path)
    assert info is not None
    return info


def _readelf(*args: str | Path) -> str:
    result = subprocess.run(
        ["readelf", "-W", *map(str, args)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # readelf warns about inconsistent headers
    return result.stdout


def _loads(path: Path) -> list[tuple[int, int, int, int, str]]:
    """(offset, vaddr, filesz, memsz, flags) of every LOAD line of ``readelf -lW``."""
    rows = []
    for line in _readelf("-l", path).splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"]:
            offset, vaddr, _paddr, filesz, memsz = (int(f, 16) for f in fields[1:6])
            rows.append((offset, vaddr, filesz, memsz, " ".join(fields[6:-1])))
    return rows


def _check_sound(path: Path) -> None:
    layout = elf.read_layout(path)
    assert layout is not None
    assert elf.layout_problems(layout) == ()
    _readelf("-lSd", path)  # no warnings


def _find(pattern: str, text: str, base: int = 10) -> int:
    match = re.search(pattern, text)
    assert match is not None, pattern
    return int(match[1], base)


def _table(path: Path) -> tuple[int, int]:
    """``e_phoff`` and ``e_phnum``, from ``readelf -hW``."""
    headers = _readelf("-h", path)
    return (
        _find(r"Start of program headers:\s+(\d+)", headers),
        _find(r"Number of program headers:\s+(\d+)", headers),
    )


def _sections(path: Path) -> dict[str, tuple[int, int, int, int]]:
    """(index, address, offset, size) of every named section, from ``readelf -SW``."""
    found = {}
    for line in _readelf("-S", path).splitlines():
        match = re.match(
            r"\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line
        )
        if match:
            found[match[2]] = (
                int(match[1]),
                int(match[3], 16),
                int(match[4], 16),
                int(match[5], 16),
            )
    return found


def _survives_tools(lib: Path, function: str, expected: str) -> None:
    """Copies of ``lib`` through GNU strip, ``strip -g`` and patchelf load and work."""
    commands: dict[str, list[str | Path]] = {
        "strip": ["strip"],
        "strip-g": ["strip", "-g"],
        "patchelf": [rpath.find_patchelf(), "--set-rpath", f"{OTHER}:{LONG_DIR}"],
    }
    for name, command in commands.items():
        copy = lib.with_name(f"{lib.name}.{name}")  # beside it: the same $ORIGIN
        shutil.copy(lib, copy)
        done = subprocess.run([*command, copy], capture_output=True, text=True, check=False)
        assert (done.returncode, done.stderr) == (0, ""), (name, done.stderr)
        _check_sound(copy)
        result = load_in_subprocess(copy, function)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.strip() == expected, name
        copy.unlink()


def test_library_without_runpath_gets_one_appended(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(
        tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base]
    )
    assert load_in_subprocess(lib, "dep").returncode != 0
    size, loads = lib.stat().st_size, _loads(lib)

    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"

    result = load_in_subprocess(lib, "dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    dynamic = _readelf("-d", lib)
    assert re.search(r"\(RUNPATH\)\s+Library runpath: \[\$ORIGIN/\.\./other\]", dynamic)
    assert re.search(r"\(NEEDED\)\s+Shared library: \[libbase\.so\.1\]", dynamic)
    assert re.search(r"\(SONAME\)\s+Library soname: \[libdep\.so\.1\]", dynamic)
    new_loads = _loads(lib)
    assert new_loads[:-1] == loads
    offset, vaddr, filesz, memsz, flags = new_loads[-1]
    assert flags == "RW"
    assert offset >= size
    assert vaddr % 4096 == offset % 4096 == 0
    assert vaddr >= max(v + m for _, v, _, m, _ in loads)
    assert filesz == memsz
    assert offset + filesz == lib.stat().st_size
    info = _info(lib)
    assert (info.runpath, info.rpath, info.needed) == ((OTHER,), (), ("libbase.so.1",))
    _check_sound(lib)
    _survives_tools(lib, "dep", "42")


def test_program_header_table_grows_in_place(tmp_path: Path, base: Path) -> None:
    # GNU strip/objcopy want the table at the start of the first PT_LOAD: it stays there, one
    # entry longer, and the sections it grows over move to the new segment.
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    phoff, phnum = _table(lib)
    before = _sections(lib)
    notes = _readelf("-n", lib)
    first_load = _loads(lib)[0]

    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"

    assert _table(lib) == (phoff, phnum + 1)
    assert _loads(lib)[0] == first_load
    offset, vaddr, filesz, _, _ = _loads(lib)[-1]
    after = _sections(lib)
    assert after.keys() == before.keys()
    moved = {name for name in after if after[name][2] != before[name][2]}
    assert {".note.gnu.build-id", ".gnu.hash", ".dynstr", ".dynamic"} <= moved
    for name in moved:
        _, addr, off, _ = after[name]
        assert offset <= off < offset + filesz, name
        assert addr - vaddr == off - offset, name
        assert after[name][0] == before[name][0], name  # same section index
    table_end = phoff + (phnum + 1) * 56
    for name, (_, _, off, size) in after.items():
        assert off >= table_end or off + size <= phoff or size == 0, name
    dynamic = _readelf("-d", lib)
    for tag, name in (("STRTAB", ".dynstr"), ("SYMTAB", ".dynsym"), ("GNU_HASH", ".gnu.hash")):
        assert _find(rf"\({tag}\)\s+0x([0-9a-f]+)", dynamic, 16) == after[name][1], tag
    segments = _readelf("-l", lib)
    _, addr, off, _ = after[".note.gnu.build-id"]
    assert _find(r"NOTE\s+0x([0-9a-f]+)", segments, 16) == off
    assert _find(r"NOTE\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", segments, 16) == addr
    assert _readelf("-n", lib) == notes  # the same build ID, found through the moved note
    _check_sound(lib)


def _patch(path: Path, offset: int, fmt: str, *values: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(fmt, *values))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("unknown section", r"section 1 \(type 0x1\) lies where the program header table grows"),
        ("note spans", r"program header \d+ covers part of the sections to move"),
        ("unknown tag", r"dynamic tag 0x70000123 may refer to the sections to move"),
    ],
)
def test_what_cannot_move_is_left_to_patchelf(
    tmp_path: Path, base: Path, damage: str, reason: str
) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    sections = _sections(lib)
    index, addr, off, size = sections[".note.gnu.build-id"]
    assert index == 1
    with open(lib, "rb") as handle:
        head = handle.read(64)
    phoff, shoff = struct.unpack_from("<QQ", head, 32)
    phnum = struct.unpack_from("<H", head, 56)[0]
    if damage == "unknown section":  # SHT_PROGBITS: might be code or data something refers to
        _patch(lib, shoff + index * 64 + 4, "<I", 1)
    elif damage == "note spans":  # PT_NOTE reaching into .dynstr, which stays
        with open(lib, "rb") as handle:
            handle.seek(phoff)
            types = [t for (t,) in struct.iter_unpack("<I52x", handle.read(phnum * 56))]
        note = phoff + types.index(4) * 56
        span = sections[".dynstr"][2] + 1 - off
        _patch(lib, note + 32, "<QQ", span, span)
    else:  # a processor-specific tag with an address inside .gnu.hash, in a spare DT_NULL slot
        _, _, dynamic, dynamic_size = sections[".dynamic"]
        with open(lib, "rb") as handle:
            handle.seek(dynamic)
            tags = [tag for tag, _ in struct.iter_unpack("<qQ", handle.read(dynamic_size))]
        assert tags.count(0) > 1
        _patch(lib, dynamic + tags.index(0) * 16, "<qQ", 0x70000123, sections[".gnu.hash"][1])
    digest = sha256(lib)
    assert re.fullmatch(reason, elfedit.append_runpath(lib, OTHER) or "")
    assert sha256(lib) == digest


def test_rpath_that_does_not_fit_becomes_an_appended_runpath(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(
        tree_with_base(tmp_path, base) / "libdep.so.1",
        DEP_C,
        needs=[base],
        rpath="/x",
        new_dtags=False,
    )
    assert _info(lib).rpath == ("/x",)
    assert rpath.set_runpath(lib, ["$ORIGIN", OTHER], runner=_refuse) == "appended"
    info = _info(lib)
    assert (info.runpath, info.rpath) == (("$ORIGIN", OTHER), ())
    dynamic = _readelf("-d", lib)
    assert "(RPATH)" not in dynamic
    assert "(RUNPATH)" in dynamic
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"
    _check_sound(lib)
    _survives_tools(lib, "dep", "42")


def test_shared_string_tail_survives_the_append(tmp_path: Path, base: Path) -> None:
    # GNU ld stores NEEDED "libbase.so.1" as the tail of this RUNPATH string; the old string table
    # is copied whole, so the NEEDED name stays intact.
    lib = compile_elf(
        tree_with_base(tmp_path, base) / "libdep.so.1",
        DEP_C,
        needs=[base],
        rpath="/nonexistent/long/dir/libbase.so.1",
    )
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    assert _info(lib).needed == ("libbase.so.1",)
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_cxx_exceptions_cross_patched_libraries(tmp_path: Path, base: Path) -> None:
    # The unwinder finds each library's .eh_frame_hdr through dl_iterate_phdr, which hands out
    # the program headers the loader located in the mapped segments: the new table must be there.
    lib_dir = tree_with_base(tmp_path, base)
    thrower = compile_elf(
        tmp_path / "other" / "libthrow.so", THROW_CC, soname="libthrow.so", needs=[base], cxx=True
    )
    catcher = compile_elf(
        lib_dir / "libcatch.so", CATCH_CC, soname="libcatch.so", needs=[thrower], cxx=True
    )
    assert rpath.set_runpath(thrower, ["$ORIGIN"], runner=_refuse) == "appended"
    assert rpath.set_runpath(catcher, [OTHER], runner=_refuse) == "appended"
    result = load_in_subprocess(catcher, "caught")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    _check_sound(thrower)
    _check_sound(catcher)
    _survives_tools(catcher, "caught", "42")
    for lib in (thrower, catcher):  # the unwinder needs each library's PT_GNU_EH_FRAME
        subprocess.run(["strip", lib], check=True)
        _check_sound(lib)
    result = load_in_subprocess(catcher, "caught")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_thread_local_storage_still_works(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libtls.so", TLS_C, needs=[base])
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    assert "TLS" in _readelf("-l", lib)
    result = load_in_subprocess(lib, "tls")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "43"  # 1 + 41 from .tdata, 0 + 1 from .tbss
    _survives_tools(lib, "tls", "43")


def test_executable_links_against_an_appended_library(tmp_path: Path, base: Path) -> None:
    # The linker reads the library through its section headers (.dynamic, .dynstr, .dynsym).
    lib = compile_elf(
        tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base]
    )
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    exe = compile_elf(
        tmp_path / "bin" / "prog", MAIN_C, shared=False, needs=[lib], rpath="$ORIGIN/../lib"
    )
    result = subprocess.run([exe], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_applying_twice(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    loads = len(_loads(lib))
    assert rpath.set_runpath(lib, ["$ORIGIN/../other/."], runner=_refuse) == "appended"
    size = lib.stat().st_size
    assert rpath.set_runpath(lib, ["$ORIGIN/../other/."], runner=_refuse) == "unchanged"
    # Shorter: fits the appended string, which nothing else shares.
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "in-place"
    assert lib.stat().st_size == size
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"
    # Longer: appended again, on top of the first append.
    longer = ["$ORIGIN", "$ORIGIN/../other/../other", "$ORIGIN/../other"]
    assert rpath.set_runpath(lib, longer, runner=_refuse) == "appended"
    assert lib.stat().st_size > size
    assert len(_loads(lib)) == loads + 2
    assert _info(lib).runpath == tuple(longer)
    result = load_in_subprocess(lib, "dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    _check_sound(lib)
    _survives_tools(lib, "dep", "42")


def test_removing_the_appended_runpath_is_in_place(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    assert rpath.set_runpath(lib, [], runner=_refuse) == "in-place"
    info = _info(lib)
    assert (info.runpath, info.rpath, info.needed) == ((), (), ("libbase.so.1",))


_RSS = """
import resource, sys
from pathlib import Path
from wheelyard.elf import rpath
if sys.argv[1:]:
    print(rpath.set_runpath(Path(sys.argv[1]), [sys.argv[2]]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak_rss(*args: str | Path) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", _RSS, *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *method, rss = result.stdout.split()
    return " ".join(method), int(rss)


def test_large_library_is_patched_in_little_memory(tmp_path: Path, base: Path) -> None:
    lib_dir = tree_with_base(tmp_path, base)
    blob = tmp_path / "blob.bin"
    with open(blob, "wb") as handle:
        handle.truncate(200 * MIB)
    source = (
        f'__asm__(".section .rodata\\n.globl big_blob\\nbig_blob:\\n.incbin \\"{blob}\\"\\n'
        '.previous\\n");\n' + DEP_C
    )
    lib = compile_elf(lib_dir / "libbig.so", source, soname="libbig.so", needs=[base])
    blob.unlink()
    assert lib.stat().st_size > 200 * MIB
    _, baseline = _peak_rss()
    method, peak = _peak_rss(lib, OTHER)
    assert method == "appended"
    assert peak - baseline < 64 * MIB, (baseline, peak)
    assert _info(lib).runpath == (OTHER,)
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_executables_are_left_to_patchelf(tmp_path: Path, base: Path) -> None:
    lib_dir = tree_with_base(tmp_path, base)
    dep = compile_elf(
        lib_dir / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base], rpath=OTHER
    )
    exe = compile_elf(tmp_path / "bin" / "prog", MAIN_C, shared=False, needs=[dep])
    assert elfedit.append_runpath(exe, OTHER) == "has PT_INTERP (an executable)"
    digest = sha256(exe)
    assert sha256(exe) == digest
    calls: list[Sequence[str | Path]] = []

    def patchelf(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.run(cmd, capture_output=True, text=True, check=True)

    assert rpath.set_runpath(exe, ["$ORIGIN/../lib"], runner=patchelf) == "patchelf"
    assert len(calls) == 1
    result = subprocess.run([exe], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_other_files_do_not_qualify(tmp_path: Path) -> None:
    script = tmp_path / "libfoo.so"
    script.write_text("INPUT(libfoo.so.1)\n")
    assert elfedit.append_runpath(script, OTHER) == "not an ELF file"
    (tmp_path / "o.c").write_text(BASE_C)
    subprocess.run(["gcc", "-c", "-o", tmp_path / "o.o", tmp_path / "o.c"], check=True)
    assert elfedit.append_runpath(tmp_path / "o.o", OTHER) == "not ET_DYN"
    # Section headers are optional for the loader; without them .dynamic cannot be found.
    lib = compile_elf(tmp_path / "libnosections.so", BASE_C)
    with open(lib, "r+b") as handle:
        handle.seek(40)  # e_shoff
        handle.write(bytes(8))
        handle.seek(60)  # e_shnum, e_shstrndx
        handle.write(bytes(4))
    assert (
        elfedit.append_runpath(lib, OTHER) == "no section headers (or extended section numbering)"
    )


def test_broken_append_is_caught_by_the_verification(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])

    def truncate(path: Path, value: str) -> str | None:
        os.truncate(path, path.stat().st_size // 2)
        return None

    monkeypatch.setattr(elfedit, "append_runpath", truncate)
    with pytest.raises(ElfError, match="after the appended RUNPATH edit"):
        rpath.set_runpath(lib, [OTHER], runner=_refuse)


@pytest.mark.parametrize(
    ("kind", "field", "reason"),
    [
        # PT_NOTE lies in the range that moves: its new address would overflow p_paddr.
        (4, "p_paddr", "a moved header or dynamic entry would not fit in its ELF64 field"),
        (4, "p_memsz", "a segment ends past the end of the 64-bit address space"),
        (1, "p_memsz", "the new segment would end past the end of the 64-bit address space"),
        (1, "p_filesz", "a PT_LOAD segment ends past the end of the file"),
    ],
)
def test_absurd_headers_are_refused_before_any_write(
    tmp_path: Path, base: Path, kind: int, field: str, reason: str
) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    offset, fmt = PHDR_FIELDS[field]
    patch(lib, program_header(lib, kind) + offset, fmt, (1 << 64) - 16)
    digest = sha256(lib)
    assert elfedit.append_runpath(lib, OTHER) == reason
    assert sha256(lib) == digest


def test_section_names_outside_the_file_do_not_qualify(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(tree_with_base(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    patch_header(lib, "sh_offset", 1 << 62, section=".shstrtab")
    digest = sha256(lib)
    assert elfedit.append_runpath(lib, OTHER) == (
        "the dynamic sections are not named .dynamic and .dynstr"
    )
    assert sha256(lib) == digest
