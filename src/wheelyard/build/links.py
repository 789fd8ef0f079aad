"""Soname chains and symlinks: what runtime wheels store and what the devel tree links.

Wheels cannot hold symlinks, so:

* a shared library is stored once, under its SONAME (``lib/libamdhip64.so.7``); the other names
  of its chain (``libamdhip64.so``, ``libamdhip64.so.7.1.25000``) are aliases that only the devel
  tree holds, as symlinks; a library without SONAME keeps its file name;
* a symlink to a directory is left to the devel tree (as TheRock does);
* any other symlink to a file (a symlinked executable such as ``bin/amdclang``) is stored as a
  copy of its target under the link's name, keeping the executable bit; console scripts run it
  with ``argv[0]`` set to their own name;
* a dangling symlink is reported by name and dropped (the profile decides if that is an error).
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wheelyard.artifacts import StagedFile
from wheelyard.elf import ElfInfo
from wheelyard.errors import SplitError
from wheelyard.report import printable

LinkKind = Literal["file", "dir", "dangling"]
_MAX_HOPS = 40


@dataclass(frozen=True, kw_only=True)
class Resolution:
    kind: LinkKind
    path: str  # final installed path (the file or directory; the missing name if dangling)


@dataclass
class TreeLinks:
    """Link facts of one family's merged installed tree."""

    tree: Mapping[str, StagedFile]
    elf: Mapping[Path, ElfInfo | None]
    _dirs: set[str] = field(default_factory=set)
    stored_as: dict[str, str] = field(default_factory=dict)  # real file path -> stored path

    def __post_init__(self) -> None:
        for path in self.tree:
            parent = posixpath.dirname(path)
            while parent and parent not in self._dirs:
                self._dirs.add(parent)
                parent = posixpath.dirname(parent)
        conflicts = []
        claimed: dict[str, str] = {}
        for path in sorted(self.tree):
            staged = self.tree[path]
            if staged.kind != "file":
                continue
            stored = self._soname_path(path, self.elf.get(staged.source))
            if stored in claimed or (stored != path and self._is_regular(stored)):
                other = claimed.get(stored, stored)
                conflicts.append(f"{path} and {other} both want to be stored as {stored}")
                continue
            claimed[stored] = path
            self.stored_as[path] = stored
        if conflicts:
            raise SplitError(
                "shared libraries whose SONAME names clash",
                conflicts,
                hint="ship only one library per SONAME in a directory",
            )

    @staticmethod
    def _soname_path(path: str, info: ElfInfo | None) -> str:
        if info is None or not info.soname or "/" in info.soname:
            return path
        return posixpath.join(posixpath.dirname(path), info.soname)

    def _is_regular(self, path: str) -> bool:
        staged = self.tree.get(path)
        return staged is not None and staged.kind == "file"

    def resolve(self, path: str) -> Resolution:
        """Where ``path`` leads in this family's merged tree, component by component, as the
        kernel resolves it: links in the middle of a path are followed, and ``..`` applies to
        where a link led, not to its text. A chain that climbs out of the tree (through links
        of several artifacts, each harmless alone) is an error naming the path."""
        current: list[str] = []
        components = deque(path.split("/"))
        hops = 0
        while components:
            part = components.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not current:
                    raise _escape(path)
                current.pop()
                continue
            candidate = "/".join([*current, part])
            staged = self.tree.get(candidate)
            if staged is not None and staged.kind != "file":
                hops += 1
                target = staged.link_target or ""
                if hops > _MAX_HOPS:
                    return Resolution(kind="dangling", path=candidate)
                if target.startswith("/"):
                    raise _escape(path)
                components.extendleft(reversed(target.split("/")))  # from the link's directory
                continue
            if (
                staged is None
                and candidate not in self._dirs
                and any(c not in ("", ".") for c in components)
            ):
                return Resolution(kind="dangling", path=candidate)  # the kernel stops here too
            current.append(part)
        final = "/".join(current)
        if self._is_regular(final):
            return Resolution(kind="file", path=final)
        kind: LinkKind = "dir" if final in self._dirs or not final else "dangling"
        return Resolution(kind=kind, path=final)

    def is_library_alias(self, path: str) -> bool:
        """A symlink resolving to a shared library (a soname chain member)."""
        resolution = self.resolve(path)
        if resolution.kind != "file":
            return False
        info = self.elf.get(self.tree[resolution.path].source)
        return (
            info is not None
            and not info.is_executable
            and (info.soname is not None or ".so" in posixpath.basename(resolution.path))
        )

    def stored_path(self, path: str) -> str:
        return self.stored_as.get(path, path)


@dataclass(frozen=True, kw_only=True)
class Payload:
    """One file a runtime wheel stores, relative to the package's module directory."""

    path: str
    staged: StagedFile  # the regular file whose bytes are stored
    executable: bool


def runtime_payload(
    files: list[StagedFile], links: TreeLinks, *, on_dangling: Callable[[str], None]
) -> list[Payload]:
    """The stored files of one runtime package instance, sorted by path."""
    payload: dict[str, Payload] = {}
    for staged in files:
        if staged.kind == "file":
            stored = links.stored_path(staged.path)
            payload[stored] = Payload(path=stored, staged=staged, executable=staged.executable)
            continue
        resolution = links.resolve(staged.path)
        if resolution.kind == "dangling":
            on_dangling(f"{staged.artifact}/{staged.path} -> {staged.link_target}")
        elif resolution.kind == "file" and not links.is_library_alias(staged.path):
            target = links.tree[resolution.path]
            payload.setdefault(
                staged.path,
                Payload(path=staged.path, staged=target, executable=target.executable),
            )
    return [payload[path] for path in sorted(payload)]


def _escape(path: str) -> SplitError:
    shown = printable(path)
    return SplitError(
        f"symlink {shown} leads out of the installed tree",
        [f"{shown}: its chain of links, resolved in the family's merged tree, climbs above it"],
        hint="links may only point inside the tree; fix the link chain in the artifacts",
    )
