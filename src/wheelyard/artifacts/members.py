"""The rules a tar member must pass before anything is written for it.

Each member is checked against the tree extracted so far: its name (relative, no ``..``, no
control characters, short enough for the OS), its type (files, directories, symlinks and hard
links only; no sparse members), its declared size (the sum is bounded), its place (never twice,
never below a symlink or a file) and, for links, where it points (a symlink through the links
already extracted must stay inside the artifact; a hard link must name a regular file that was
already extracted).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wheelyard.artifacts.tree import (
    LinkEscape,
    Node,
    Parts,
    TreeModel,
    name_problem,
    split_relative,
)
from wheelyard.errors import ArtifactError
from wheelyard.report import human_size

_MALICIOUS = "the archive is malicious or broken; do not use it"
LIMIT_HINT = (
    "raise the profile's [artifacts] max_extracted_gib or pass --max-extract-size, "
    "if the archive is genuine"
)


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: Literal["dir", "file", "symlink", "hardlink", "skip"]
    path: Parts
    existing: Parts = ()  # hard links: the file linked to


class MemberChecker:
    """Checks the members of one archive in order, keeping the model of the extracted tree."""

    def __init__(self, archive: Path, root: Path, *, max_bytes: int) -> None:
        self.archive = archive
        self.model = TreeModel()
        self.max_bytes = max_bytes
        self.total = 0
        self._explicit: set[Parts] = set()
        self._root_bytes = len(os.fsencode(root)) + 1
        self._name_max = os.pathconf(root, "PC_NAME_MAX")
        self._path_max = os.pathconf(root, "PC_PATH_MAX")

    def fail(self, member: tarfile.TarInfo, problem: str, hint: str = _MALICIOUS) -> ArtifactError:
        return ArtifactError(self.archive, f"member {member.name!r} {problem}", hint=hint)

    def check(self, member: tarfile.TarInfo) -> Action:
        """Accept ``member`` into the model and say what to create, or raise ArtifactError."""
        parts = self._path(member, member.name)
        self._check_type_and_size(member)
        if not parts:
            if member.isdir():
                return Action(kind="skip", path=())
            raise self.fail(member, "names the artifact's root directory")
        if parts in self._explicit:
            raise self.fail(member, "appears twice in the archive")
        if self.model.get(parts) is not None and not member.isdir():
            raise self.fail(member, "names a directory that earlier members were extracted into")
        self._check_parents(member, parts)
        self._explicit.add(parts)
        if member.isdir():
            self.model.add(parts, Node("dir"))
            return Action(kind="dir", path=parts)
        if member.issym():
            return self._symlink(member, parts)
        if member.islnk():
            return self._hard_link(member, parts)
        self.model.add(parts, Node("file"))
        return Action(kind="file", path=parts)

    def _path(self, member: tarfile.TarInfo, text: str) -> Parts:
        problem = name_problem(text)
        if problem is not None:
            raise self.fail(member, f"has a name that {problem}")
        normal = split_relative(text)
        if normal is None:
            raise self.fail(member, "would be written outside the artifact")
        for part in normal:
            if len(part.encode()) > self._name_max:
                raise self.fail(
                    member,
                    f"has a file name of {len(part.encode())} bytes; this file system allows "
                    f"{self._name_max}",
                    hint="shorten the file name in the artifact",
                )
        length = self._root_bytes + len("/".join(normal).encode())
        if length >= self._path_max:
            raise self.fail(
                member,
                f"would have a path of {length} bytes once extracted; the OS allows "
                f"{self._path_max - 1}",
                hint="shorten the paths in the artifact, or extract into a shorter --out",
            )
        return normal

    def _check_type_and_size(self, member: tarfile.TarInfo) -> None:
        if member.issparse():
            raise self.fail(
                member,
                "is a sparse file; sparse members are refused",
                hint="re-create the archive without --sparse",
            )
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            kind = {
                tarfile.CHRTYPE: "a character device",
                tarfile.BLKTYPE: "a block device",
                tarfile.FIFOTYPE: "a FIFO",
            }.get(member.type, f"of unknown type {member.type!r}")
            raise self.fail(member, f"is {kind}; refusing to extract")
        if member.size < 0:
            raise self.fail(member, f"declares a negative size ({member.size})")
        self.total += member.size
        if self.total > self.max_bytes:
            raise self.fail(
                member,
                f"declares {member.size} bytes, which takes the archive past "
                f"{human_size(self.max_bytes)} extracted",
                hint=LIMIT_HINT,
            )

    def _check_parents(self, member: tarfile.TarInfo, parts: Parts) -> None:
        for depth in range(1, len(parts)):
            node = self.model.get(parts[:depth])
            if node is not None and node.kind != "dir":
                below = "/".join(parts[:depth])
                raise self.fail(member, f"would be written below the {node.kind} {below!r}")

    def _symlink(self, member: tarfile.TarInfo, parts: Parts) -> Action:
        target = member.linkname
        problem = name_problem(target)
        if problem is not None:
            raise self.fail(member, f"is a symlink whose target {problem}")
        if not target or len(target.encode()) >= self._path_max:
            raise self.fail(member, f"is a symlink with an unusable target of {len(target)} bytes")
        try:
            self.model.add_checked_link(parts, target)
        except LinkEscape as escape:
            shown = f"symlink {member.name!r} -> {target!r}"
            if escape.link != parts:
                earlier = "/".join(escape.link)
                shown += (
                    f" changes what the earlier symlink {earlier!r} -> "
                    f"{self.model.nodes[escape.link].target!r} resolves to: it"
                )
            raise ArtifactError(
                self.archive,
                f"{shown} {escape.reason} (resolved through the links extracted before it)",
                hint=_MALICIOUS,
            ) from None
        return Action(kind="symlink", path=parts)

    def _hard_link(self, member: tarfile.TarInfo, parts: Parts) -> Action:
        shown = f"hard link {member.name!r} -> {member.linkname!r}"
        existing = split_relative(member.linkname)
        if existing is None or name_problem(member.linkname) is not None:
            raise ArtifactError(self.archive, f"{shown} leaves the artifact", hint=_MALICIOUS)
        node = self.model.get(existing)
        if node is None or node.kind != "file":
            found = "nothing" if node is None else f"a {node.kind}"
            raise ArtifactError(
                self.archive,
                f"{shown} names {found} in the archive so far: a hard link may only name a "
                "regular file extracted before it",
                hint=_MALICIOUS,
            )
        self.model.add(parts, Node("file"))
        return Action(kind="hardlink", path=parts, existing=existing)
