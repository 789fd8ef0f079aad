"""The streaming RUNPATH append for shared libraries (wheelyard.elfedit), through rpath.set_runpath.

Every patched library is loaded in a fresh interpreter without LD_LIBRARY_PATH, so the loader
must find its dependency through the appended RUNPATH, and is read back by readelf as well as
by wheelyard's own reader.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from _elfbuild import (
    BASE_C,
    DEP_C,
    MAIN_C,
    clean_env,
    compile_elf,
    load_in_subprocess,
    sha256,
)

from wheelyard import elf, elfedit, rpath
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
    root = tmp_path_factory.mktemp("base")
    return compile_elf(root / "other" / "libbase.so.1", BASE_C, soname="libbase.so.1")


def _tree(tmp_path: Path, base: Path) -> Path:
    """other/libbase.so.1 and an empty lib/ beside it; returns lib/."""
    (tmp_path / "other").mkdir()
    shutil.copy(base, tmp_path / "other" / "libbase.so.1")
    (tmp_path / "lib").mkdir()
    return tmp_path / "lib"


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


def test_library_without_runpath_gets_one_appended(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(
        _tree(tmp_path, base) / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base]
    )
    assert load_in_subprocess(lib, "dep").returncode != 0
    size, loads = lib.stat().st_size, _loads(lib)
    assert elfedit.unsupported(lib) is None

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


def test_program_headers_and_sections_point_into_the_new_segment(
    tmp_path: Path, base: Path
) -> None:
    lib = compile_elf(_tree(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    offset, vaddr, filesz, _, _ = _loads(lib)[-1]
    headers = _readelf("-h", lib)
    phoff = int(re.search(r"Start of program headers:\s+(\d+)", headers)[1])
    phnum = int(re.search(r"Number of program headers:\s+(\d+)", headers)[1])
    assert offset <= phoff
    assert phoff + phnum * 56 <= offset + filesz
    sections = {}
    for line in _readelf("-S", lib).splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\.dyn\w+)\s+\w+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if match:
            sections[match[1]] = (int(match[2], 16), int(match[3], 16))
    for name in (".dynstr", ".dynamic"):
        addr, off = sections[name]
        assert offset <= off < offset + filesz, name
        assert addr - vaddr == off - offset, name
    dynamic = _readelf("-d", lib)
    strtab = int(re.search(r"\(STRTAB\)\s+0x([0-9a-f]+)", dynamic)[1], 16)
    assert strtab == sections[".dynstr"][0]


def test_rpath_that_does_not_fit_becomes_an_appended_runpath(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(
        _tree(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base], rpath="/x", new_dtags=False
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


def test_shared_string_tail_survives_the_append(tmp_path: Path, base: Path) -> None:
    # GNU ld stores NEEDED "libbase.so.1" as the tail of this RUNPATH string; the old string table
    # is copied whole, so the NEEDED name stays intact.
    lib = compile_elf(
        _tree(tmp_path, base) / "libdep.so.1",
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
    lib_dir = _tree(tmp_path, base)
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


def test_thread_local_storage_still_works(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(_tree(tmp_path, base) / "libtls.so", TLS_C, needs=[base])
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    assert "TLS" in _readelf("-l", lib)
    result = load_in_subprocess(lib, "tls")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "43"  # 1 + 41 from .tdata, 0 + 1 from .tbss


def test_executable_links_against_an_appended_library(tmp_path: Path, base: Path) -> None:
    # The linker reads the library through its section headers (.dynamic, .dynstr, .dynsym).
    lib = compile_elf(
        _tree(tmp_path, base) / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base]
    )
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    exe = compile_elf(
        tmp_path / "bin" / "prog", MAIN_C, shared=False, needs=[lib], rpath="$ORIGIN/../lib"
    )
    result = subprocess.run([exe], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_applying_twice(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(_tree(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
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


def test_removing_the_appended_runpath_is_in_place(tmp_path: Path, base: Path) -> None:
    lib = compile_elf(_tree(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])
    assert rpath.set_runpath(lib, [OTHER], runner=_refuse) == "appended"
    assert rpath.set_runpath(lib, [], runner=_refuse) == "in-place"
    info = _info(lib)
    assert (info.runpath, info.rpath, info.needed) == ((), (), ("libbase.so.1",))


_RSS = """
import resource, sys
from pathlib import Path
from wheelyard import rpath
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
    lib_dir = _tree(tmp_path, base)
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
    lib_dir = _tree(tmp_path, base)
    dep = compile_elf(
        lib_dir / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base], rpath=OTHER
    )
    exe = compile_elf(tmp_path / "bin" / "prog", MAIN_C, shared=False, needs=[dep])
    assert elfedit.unsupported(exe) == "has PT_INTERP (an executable)"
    digest = sha256(exe)
    assert not elfedit.append_runpath(exe, "$ORIGIN/../lib")
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
    assert elfedit.unsupported(script) == "not an ELF file"
    (tmp_path / "o.c").write_text(BASE_C)
    subprocess.run(["gcc", "-c", "-o", tmp_path / "o.o", tmp_path / "o.c"], check=True)
    assert elfedit.unsupported(tmp_path / "o.o") == "not ET_DYN"
    # Section headers are optional for the loader; without them .dynamic cannot be found.
    lib = compile_elf(tmp_path / "libnosections.so", BASE_C)
    with open(lib, "r+b") as handle:
        handle.seek(40)  # e_shoff
        handle.write(bytes(8))
        handle.seek(60)  # e_shnum, e_shstrndx
        handle.write(bytes(4))
    assert elfedit.unsupported(lib) == "no section headers (or extended section numbering)"


def test_broken_append_is_caught_by_the_verification(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = compile_elf(_tree(tmp_path, base) / "libdep.so.1", DEP_C, needs=[base])

    def truncate(path: Path, value: str) -> bool:
        os.truncate(path, path.stat().st_size // 2)
        return True

    monkeypatch.setattr(elfedit, "append_runpath", truncate)
    with pytest.raises(ElfError, match="after the appended RUNPATH edit"):
        rpath.set_runpath(lib, [OTHER], runner=_refuse)
