"""Build tiny real ELF files with the system C compiler, for the elf/rpath/closure tests.

gcc and g++ are part of the development environment, so these tests never skip for want of them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BASE_C = "int base(void) { return 41; }\n"
DEP_C = "int base(void);\nint dep(void) { return base() + 1; }\n"
# strlen and __cxa_finalize: the architecture's oldest symbol versions (GLIBC_2.2.5 on x86_64).
OLD_GLIBC_C = "#include <string.h>\nunsigned long measure(const char *s) { return strlen(s); }\n"
MAIN_C = (
    '#include <stdio.h>\nint dep(void);\nint main(void) { printf("%d\\n", dep()); return 0; }\n'
)
# The oldest glibc symbol version per machine, as a (major, minor) pair.
BASELINE_GLIBC = {"x86_64": (2, 2), "aarch64": (2, 17), "ppc64le": (2, 17), "s390x": (2, 2)}
LONG_DIR = "/nonexistent/a/rather/long/build/tree/path/that/leaves/room/for/new/entries"
# Byte offset and format of the ELF64 little-endian header fields the corruption tests patch.
EHDR_FIELDS = {
    "e_phoff": (32, "<Q"),
    "e_shoff": (40, "<Q"),
    "e_phentsize": (54, "<H"),
    "e_phnum": (56, "<H"),
    "e_shentsize": (58, "<H"),
    "e_shnum": (60, "<H"),
}
SHDR_FIELDS = {
    "sh_offset": (24, "<Q"),
    "sh_size": (32, "<Q"),
    "sh_link": (40, "<I"),
    "sh_info": (44, "<I"),
    "sh_entsize": (56, "<Q"),
}
PHDR_FIELDS = {
    "p_offset": (8, "<Q"),
    "p_paddr": (24, "<Q"),
    "p_filesz": (32, "<Q"),
    "p_memsz": (40, "<Q"),
}


def compile_elf(
    out: Path,
    source: str,
    *,
    shared: bool = True,
    soname: str | None = None,
    needs: Sequence[Path] = (),
    rpath: str | None = None,
    new_dtags: bool = True,
    cxx: bool = False,
) -> Path:
    """Compile ``source`` into ``out`` and link it against the libraries ``needs``.

    ``cxx`` compiles C++ with g++ (which also links libstdc++).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / f".{out.name}.{'cc' if cxx else 'c'}"
    src.write_text(source)
    compiler = "g++" if cxx else "gcc"
    cmd = [compiler, "-O0", "-fno-stack-protector", "-o", str(out), str(src)]
    if shared:
        cmd[1:1] = ["-shared", "-fPIC"]
    if soname is not None:
        cmd.append(f"-Wl,-soname,{soname}")
    for lib in needs:
        # -rpath-link lets ld find what those libraries need in turn, at link time only.
        cmd += [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath-link,{lib.parent}"]
    if rpath is not None:
        dtags = "--enable-new-dtags" if new_dtags else "--disable-new-dtags"
        cmd.append(f"-Wl,{dtags},-rpath,{rpath}")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stderr}")
    src.unlink()
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clean_env() -> dict[str, str]:
    """The environment without LD_LIBRARY_PATH: libraries must be found through RUNPATH."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}


def load_in_subprocess(library: Path, function: str) -> subprocess.CompletedProcess[str]:
    """Load ``library`` with ctypes in a fresh interpreter and print ``function()``."""
    code = f"import ctypes, sys\nlib = ctypes.CDLL(sys.argv[1])\nprint(lib.{function}())\n"
    return subprocess.run(
        [sys.executable, "-c", code, str(library)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )


def build_base(root: Path, directory: str) -> Path:
    """``root/<directory>/libbase.so.1``: the library the edited test libraries depend on."""
    return compile_elf(root / directory / "libbase.so.1", BASE_C, soname="libbase.so.1")


def tree_with_base(tmp_path: Path, base: Path) -> Path:
    """A private tree: a copy of ``base`` in its directory and an empty lib/ beside it."""
    (tmp_path / base.parent.name).mkdir()
    shutil.copy(base, tmp_path / base.parent.name / base.name)
    (tmp_path / "lib").mkdir()
    return tmp_path / "lib"


def section_header(path: Path, name: str) -> int:
    """File offset of the header of section ``name`` ("" is section 0) of an ELF64 LE file."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    (names,) = struct.unpack_from("<Q", data, shoff + shstrndx * 64 + 24)
    for n in range(shnum):
        (offset,) = struct.unpack_from("<I", data, shoff + n * 64)
        start = names + offset
        if data[start : data.index(b"\0", start)].decode() == name:
            return shoff + n * 64
    raise KeyError(name)


def program_header(path: Path, kind: int) -> int:
    """File offset of the first program header of type ``kind`` of an ELF64 LE file."""
    data = path.read_bytes()
    (phoff,) = struct.unpack_from("<Q", data, 32)
    (phnum,) = struct.unpack_from("<H", data, 56)
    for n in range(phnum):
        if struct.unpack_from("<I", data, phoff + n * 56) == (kind,):
            return phoff + n * 56
    raise KeyError(kind)


def dynamic_entry(path: Path, tag: int) -> int:
    """File offset of the value of the first dynamic entry with ``tag`` (ELF64 LE)."""
    data = path.read_bytes()
    (offset,) = struct.unpack_from("<Q", data, section_header(path, ".dynamic") + 24)
    while True:
        found, _value = struct.unpack_from("<qQ", data, offset)
        if found == tag:
            return offset + 8
        if found == 0:
            raise KeyError(tag)
        offset += 16


def patch(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite bytes of ``path`` at ``offset`` with ``value`` packed as ``fmt``."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(fmt, value))


def patch_header(path: Path, field: str, value: int, *, section: str | None = None) -> None:
    """Overwrite a field of the ELF header, or of the header of section ``section``."""
    if section is None:
        offset, fmt = EHDR_FIELDS[field]
    else:
        relative, fmt = SHDR_FIELDS[field]
        offset = section_header(path, section) + relative
    patch(path, offset, fmt, value)
