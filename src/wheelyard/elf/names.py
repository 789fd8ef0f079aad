"""Library names the loader would resolve differently than the closure check: refused early.

Two rules over the ELF files a build ships (:class:`~wheelyard.elf.ShippedElf`):

* every DT_NEEDED and DT_SONAME is a plain file name: not empty, not ``.`` or ``..``, no ``/``
  (the loader opens such a NEEDED as a path, relative to the working directory, instead of
  searching the RUNPATH) and no control characters (they reach terminals and logs);
* within one family's wheel set (its own wheels plus the generic ones, which install together),
  no library name is provided by two files: a sibling would load whichever the loader finds first,
  so a library in one package could shadow a core library.

Both raise :class:`~wheelyard.errors.LibraryNameError` naming every file, its wheel and where it
came from, with names escaped for the terminal.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from wheelyard.elf.closure import DEVICE_MACHINES, ShippedElf, is_library
from wheelyard.errors import LibraryNameError
from wheelyard.report import printable

GENERIC_SET = "generic"  # the label of the set when a build has generic wheels only


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe DT_NEEDED/DT_SONAME value, or None if it is."""
    if not name:
        return "is empty"
    if "/" in name:
        return "contains '/': the loader would open it as a path, not search for it"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
        return "contains control characters"
    if name in (".", ".."):
        return "is not a file name"
    return None


def check_names(files: Sequence[ShippedElf]) -> None:
    """Raise :class:`LibraryNameError` listing every unsafe DT_NEEDED or DT_SONAME."""
    problems = []
    for item in sorted(files, key=lambda f: (f.wheel, f.path)):
        tags = [("DT_SONAME", item.info.soname)] if item.info.soname is not None else []
        tags += [("DT_NEEDED", name) for name in item.info.needed]
        for tag, name in tags:
            problem = name_problem(name)
            if problem is not None:
                problems.append(f'{describe(item)}: {tag} "{printable(name)}" {problem}')
    if problems:
        raise LibraryNameError(
            "unsafe library names in ELF files",
            problems,
            hint="fix the SONAME or the libraries linked against (use -Wl,-soname with a plain "
            "file name), then rebuild the artifact",
        )


def check_shadowing(files: Sequence[ShippedElf]) -> None:
    """Raise :class:`LibraryNameError` when two files of one wheel set provide one name."""
    named = sorted({f.family for f in files if f.family is not None})
    families: list[str | None] = [*named] if named else [None]
    found: dict[tuple[str, tuple[ShippedElf, ...]], list[str]] = {}
    for family in families:
        providers: dict[tuple[str, int, str], list[ShippedElf]] = {}
        for item in files:
            if item.family not in (None, family) or item.info.machine in DEVICE_MACHINES:
                continue
            if is_library(item.info):
                name = item.info.soname or posixpath.basename(item.path)
                providers.setdefault((item.info.machine, item.info.bits, name), []).append(item)
        for (_machine, _bits, name), items in sorted(providers.items()):
            if len(items) > 1:
                ordered = tuple(sorted(items, key=lambda f: (f.wheel, f.path)))
                found.setdefault((name, ordered), []).append(family or GENERIC_SET)
    if found:
        raise LibraryNameError(
            "library names provided by more than one file of a wheel set",
            [
                f"{printable(name)} in the wheel set of {', '.join(sets)}: "
                + " and ".join(describe(item) for item in items)
                for (name, items), sets in sorted(found.items(), key=lambda kv: kv[0][0])
            ],
            hint="a library loads whichever file the loader finds first; ship each library "
            "in one package only, or give the other file its own SONAME",
        )


def describe(item: ShippedElf) -> str:
    """``wheel/path (from artifact/path)``, escaped for the terminal."""
    text = f"{item.wheel}/{item.path}"
    if item.origin:
        text += f" (from {item.origin})"
    return printable(text)
