"""Keeping ``wheelyard index`` inside ``--dist``: safe names, known families, checked targets.

Names from the network or from a directory listing (families, projects, filenames) must each be
one safe path component. Every file the index will write or delete is checked, for the whole
plan and before anything is written: its resolved directory lies under the resolved ``--dist``,
its directories are directories and the file itself is a regular file or absent.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wheelyard.errors import IndexError_, format_list
from wheelyard.profile import FamilyRegistry

RESERVED_FAMILIES = frozenset({"generic", "index.html", "index.json", "simple"})
"""Names a family directory may not have: they are pages or namespaces of the index itself."""
_MAX_COMPONENT = 255


def shown(text: str, *, limit: int = 0) -> str:
    """``text`` safe for a terminal: non-printable characters as escapes; cut after ``limit``."""
    if limit and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def unsafe_component(name: str) -> str | None:
    """Why ``name`` is not one safe path component, or ``None`` when it is."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it is a relative path step"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if not name.isprintable():
        return "it contains control or non-printable characters"
    if name.startswith("."):
        return "it starts with a dot"
    if len(name.encode("utf-8", errors="surrogateescape")) > _MAX_COMPONENT:
        return "it is longer than 255 bytes"
    return None


def check_component(name: str, what: str, where: str, *, hint: str) -> None:
    """Refuse ``name`` unless it is one safe path component."""
    problem = unsafe_component(name)
    if problem is not None:
        raise IndexError_(
            f"{where}: {what} '{shown(name, limit=100)}' is not a single safe path component "
            f"({problem})",
            hint=hint,
        )


@dataclass(frozen=True, kw_only=True)
class KnownFamilies:
    """The family names a profile accepts: its named families and every single target."""

    names: frozenset[str]
    named: tuple[str, ...]

    @classmethod
    def from_registry(cls, registry: FamilyRegistry) -> KnownFamilies:
        return cls(
            names=frozenset(registry.names()),
            named=tuple(sorted(family.name for family in registry.families)),
        )


def family_hint(known: KnownFamilies | None) -> str:
    if known is None:
        return "name the family explicitly: --merge-from FAMILY=URL"
    return (
        f"valid families: {', '.join(known.named)}, or any single target of them "
        "(`wheelyard families` lists all); a URL's family can be named: --merge-from FAMILY=URL"
    )


def check_family(
    name: str, where: str, known: KnownFamilies | None, *, what: str = "family"
) -> None:
    """Refuse a family name that is unsafe, reserved, or (with ``known``) not in the profile."""
    check_component(name, what, where, hint=family_hint(known))
    if name in RESERVED_FAMILIES:
        raise IndexError_(
            f"{where}: {what} '{name}' cannot be a family: the index uses that name itself",
            hint=family_hint(known),
        )
    if known is not None and name not in known.names:
        raise IndexError_(
            f"{where}: {what} '{shown(name, limit=100)}' is not in the profile's families",
            hint=family_hint(known),
        )


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def _problems_of(root: Path, real_root: str, relative: str, *, want_dir: bool) -> list[str]:
    """What is wrong with writing or deleting ``root/relative``; empty when nothing is."""
    parts = relative.split("/")
    bad = [part for part in parts if unsafe_component(part) is not None]
    if bad:
        return [f"{shown(relative, limit=200)}: unsafe path component '{shown(bad[0])}'"]
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        try:
            info = (root / ancestor).stat()
        except FileNotFoundError:
            break
        except OSError as error:  # ELOOP, EACCES: report, do not guess
            return [f"{ancestor}: {error.strerror}"]
        if not stat.S_ISDIR(info.st_mode):
            return [f"{ancestor} is {_kind(info.st_mode)} where the index needs a directory"]
    parent = os.path.realpath((root / relative).parent)
    if not _within(parent, real_root):
        return [f"{relative} resolves into {shown(parent)}, outside --dist"]
    own = _lstat(root / relative)
    expected = stat.S_ISDIR if want_dir else stat.S_ISREG
    if own is not None and not expected(own.st_mode):
        needed = "a directory" if want_dir else "a file"
        return [f"{relative} is {_kind(own.st_mode)} where the index needs {needed}"]
    return []


def check_targets(
    dist: Path, writes: Sequence[str], unlinks: Sequence[str], rmdirs: Sequence[str]
) -> None:
    """Refuse the whole plan if any write or delete would leave ``dist`` or hit a wrong type."""
    real_root = os.path.realpath(dist)
    if not Path(real_root).is_dir():
        raise IndexError_(f"{dist}: not a directory", hint="pass --dist the build's dist/")
    problems: set[str] = set()
    files = set(writes) | set(unlinks)
    for relative in sorted(files):
        parts = relative.split("/")
        clashes = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        problems.update(
            f"{shown(c)} would be both a file and a directory" for c in clashes if c in files
        )
        problems.update(_problems_of(dist, real_root, relative, want_dir=False))
    for relative in sorted(rmdirs):
        problems.update(_problems_of(dist, real_root, relative, want_dir=True))
    if problems:
        raise IndexError_(
            f"{dist}: cannot write the index there, nothing was written:\n"
            + format_list(sorted(problems)),
            hint="move these entries out of the way: the index owns index.html, "
            "<family>/index.html, <family>/simple/ and the .metadata files beside the wheels",
        )


def plan_stale_pages(
    dist: Path, families: Iterable[str], wanted: Collection[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(pages to delete, project directories to remove when empty) under ``<family>/simple/``.

    Only the page names the index writes are ever deleted; the caller checks them like writes.
    """
    unlinks: list[str] = []
    rmdirs: list[str] = []
    for family in sorted(set(families)):
        simple = dist / family / "simple"
        if not simple.is_dir():
            continue
        for project_dir in sorted(simple.iterdir()):
            relative = f"{family}/simple/{project_dir.name}"
            if not project_dir.is_dir() or f"{relative}/index.json" in wanted:
                continue
            stale = [f"{relative}/{name}" for name in ("index.html", "index.json")]
            unlinks.extend(p for p in stale if p not in wanted and os.path.lexists(dist / p))
            rmdirs.append(relative)
    return tuple(unlinks), tuple(rmdirs)
