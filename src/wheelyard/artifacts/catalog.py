"""TheRock artifacts: names, manifests and the installed tree of each artifact.

An artifact is a directory ``{name}_{component}_{family}`` (or the same name plus ``.tar.xz`` /
``.tar.zst``) whose ``artifact_manifest.txt`` lists stage roots; the installed tree is the union
of the stage roots. Roots named in the manifest but absent on disk are skipped, as TheRock does.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wheelyard.artifacts.confined import read_regular_file
from wheelyard.artifacts.extract import DEFAULT_MAX_EXTRACTED, extract_archive
from wheelyard.artifacts.tree import LinkEscape, Node, TreeModel, name_problem
from wheelyard.errors import ArtifactError
from wheelyard.profile import GENERIC

MANIFEST = "artifact_manifest.txt"
MANIFEST_LIMIT = 1 << 20
COMPONENTS = ("lib", "run", "dev", "dbg", "doc", "test")
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.zst")
_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9.+-]*)_(?P<component>[a-z]+)_(?P<family>[A-Za-z0-9][A-Za-z0-9.-]*)$"
)


@dataclass(frozen=True, kw_only=True, order=True)
class ArtifactName:
    name: str
    component: str
    family: str

    @classmethod
    def parse(cls, text: str, *, where: Path | None = None) -> ArtifactName:
        match = _NAME.match(text)
        if match is None or match.group("component") not in COMPONENTS:
            raise ArtifactError(
                where or text,
                f"malformed artifact name {text!r}",
                hint="artifact names are NAME_COMPONENT_FAMILY, for example "
                "core-hip_lib_generic or blas_lib_gfx94X-dcgpu; COMPONENT is one of "
                + ", ".join(COMPONENTS),
            )
        return cls(
            name=match.group("name"),
            component=match.group("component"),
            family=match.group("family"),
        )

    def __str__(self) -> str:
        return f"{self.name}_{self.component}_{self.family}"


@dataclass(frozen=True, kw_only=True)
class StagedFile:
    """One entry of an artifact's installed tree."""

    artifact: ArtifactName
    path: str  # installed path, posix, relative ("lib/libamdhip64.so.7")
    source: Path  # where the bytes (or the link) are on disk
    kind: Literal["file", "symlink"]
    size: int
    executable: bool = False
    link_target: str | None = None  # as stored in the symlink


@dataclass(frozen=True, kw_only=True)
class Artifact:
    name: ArtifactName
    root: Path
    files: tuple[StagedFile, ...]


@dataclass(frozen=True, kw_only=True)
class ArtifactSource:
    """An artifact found in the input directory, not yet read."""

    name: ArtifactName
    path: Path  # the directory or the archive

    @property
    def is_archive(self) -> bool:
        return self.path.is_file()


def find_artifacts(directory: Path) -> list[ArtifactSource]:
    """List the artifacts in ``directory``: subdirectories and archives, sorted by name.

    Plain files that are not archives (checksums, READMEs) are ignored; a subdirectory whose name
    is not an artifact name is an error, since it is most likely a misnamed artifact. A symlink to
    a directory or named like an archive is an error: it is never followed, nor skipped unseen.
    """
    if not directory.is_dir():
        raise ArtifactError(directory, "not a directory", hint="pass --artifacts DIR")
    found: dict[str, ArtifactSource] = {}
    try:
        listing = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise ArtifactError(directory, f"cannot list: {exc.strerror}") from None
    for entry in listing:
        path = Path(entry.path)
        text = _artifact_entry(entry)
        if text is None:
            continue
        name = ArtifactName.parse(text, where=path)
        if text in found:
            raise ArtifactError(
                path,
                f"artifact {text} is present twice ({found[text].path.name})",
                hint="keep either the directory or the archive",
            )
        found[text] = ArtifactSource(name=name, path=path)
    return [found[key] for key in sorted(found)]


def _artifact_entry(entry: os.DirEntry[str]) -> str | None:
    """The artifact name of a directory entry, or None if it is no artifact."""
    path = Path(entry.path)
    archive = entry.name.endswith(ARCHIVE_SUFFIXES)
    if entry.is_symlink():
        if not archive and not entry.is_dir():
            return None
        raise ArtifactError(
            path,
            f"is a symlink (to {str(path.readlink())!r}); symlinked artifacts are not followed",
            hint="move or copy the artifact itself into --artifacts (cp -a --dereference), "
            "or point --artifacts at the directory that holds it",
        )
    if entry.is_dir(follow_symlinks=False):
        return entry.name
    if not archive:
        return None
    if not entry.is_file(follow_symlinks=False):
        raise ArtifactError(path, "is named like an archive but is not a regular file")
    return entry.name.removesuffix(".tar.xz").removesuffix(".tar.zst")


def select(sources: Iterable[ArtifactSource], families: Iterable[str]) -> list[ArtifactSource]:
    """The artifacts a build of ``families`` reads: generic ones and those of the families."""
    wanted = {GENERIC, *families}
    return [source for source in sources if source.name.family in wanted]


def read_artifact(
    source: ArtifactSource, *, extract_to: Path, max_bytes: int = DEFAULT_MAX_EXTRACTED
) -> Artifact:
    """Read (extracting first, if an archive) one artifact's installed tree.

    ``max_bytes`` bounds what an archive may expand to.
    """
    root = source.path
    if source.is_archive:
        root = extract_archive(source.path, extract_to / str(source.name), max_bytes=max_bytes)
    return Artifact(name=source.name, root=root, files=tuple(_walk_tree(source.name, root)))


def _stage_roots(root: Path) -> list[Path]:
    manifest = root / MANIFEST
    data = read_regular_file(manifest, what="manifest", limit=MANIFEST_LIMIT)
    if data is None:
        raise ArtifactError(
            root,
            f"{MANIFEST} is missing",
            hint="every TheRock artifact lists its stage roots in "
            f"{MANIFEST}; re-create the artifact",
        )
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ArtifactError(manifest, "is not UTF-8 text") from None
    roots = []
    real_root = root.resolve()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        normal = posixpath.normpath(line)
        if posixpath.isabs(line) or normal == ".." or normal.startswith("../"):
            raise ArtifactError(manifest, f"line {number}: stage root {line!r} leaves the artifact")
        path = root / normal
        if path.exists() and not path.resolve().is_relative_to(real_root):
            raise ArtifactError(
                manifest,
                f"line {number}: stage root {line!r} leaves the artifact through a symlink",
            )
        if path.is_dir():
            roots.append(path)
    return roots


def _walk_tree(name: ArtifactName, root: Path) -> Iterator[StagedFile]:
    seen: dict[str, Path] = {}
    for stage in _stage_roots(root):
        for staged in _walk_stage(name, stage):
            if staged.path in seen:
                raise ArtifactError(
                    root,
                    f"installed path {staged.path} comes from two stage "
                    f"roots ({seen[staged.path]} and {staged.source})",
                )
            seen[staged.path] = staged.source
            yield staged


def _walk_stage(name: ArtifactName, stage: Path) -> Iterator[StagedFile]:
    """The entries of one stage root, after every symlink was resolved through the tree."""
    model = TreeModel()
    staged = []
    try:
        for rel, path, info in _scan(stage):
            parts = tuple(rel.split("/"))
            if stat.S_ISLNK(info.st_mode):
                target = str(path.readlink())
                problem = name_problem(target)
                if problem is not None:
                    raise ArtifactError(stage, f"symlink {rel!r} has a target that {problem}")
                model.add(parts, Node("symlink", target))
                staged.append(
                    StagedFile(
                        artifact=name,
                        path=rel,
                        source=path,
                        kind="symlink",
                        size=0,
                        link_target=target,
                    )
                )
            else:
                model.add(parts, Node("file"))
                staged.append(
                    StagedFile(
                        artifact=name,
                        path=rel,
                        source=path,
                        kind="file",
                        size=info.st_size,
                        executable=bool(info.st_mode & 0o111),
                    )
                )
    except OSError as exc:
        raise ArtifactError(exc.filename or stage, f"cannot read: {exc.strerror}") from None
    try:
        model.check_all_links()
    except LinkEscape as escape:
        target = model.nodes[escape.link].target
        problem = escape.reason if escape.kind == "loop" else f"leaves artifact {name}"
        raise ArtifactError(
            stage / "/".join(escape.link),
            f"symlink to {target!r} {problem} (resolved through the links in the tree)",
            hint="symlinks in artifacts must be relative and stay inside the tree",
        ) from None
    yield from staged


def _scan(stage: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Symlinks and regular files below ``stage`` (not following links); anything else fails."""
    pending = [stage]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                rel = path.relative_to(stage).as_posix()
                problem = name_problem(rel)
                if problem is not None:
                    raise ArtifactError(stage, f"file name {rel!r} {problem}")
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
                elif stat.S_ISLNK(info.st_mode) or stat.S_ISREG(info.st_mode):
                    yield rel, path, info
                else:
                    raise ArtifactError(
                        path,
                        "is a device, socket or pipe; artifacts may only "
                        "hold files, directories and symlinks",
                    )
