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

from wheelyard.artifacts.extract import extract_archive
from wheelyard.errors import ArtifactError
from wheelyard.profile import GENERIC

MANIFEST = "artifact_manifest.txt"
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
    is not an artifact name is an error, since it is most likely a misnamed artifact.
    """
    if not directory.is_dir():
        raise ArtifactError(directory, "not a directory", hint="pass --artifacts DIR")
    found: dict[str, ArtifactSource] = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            text = entry.name
        elif entry.is_file() and entry.name.endswith(ARCHIVE_SUFFIXES):
            text = entry.name.removesuffix(".tar.xz").removesuffix(".tar.zst")
        else:
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


def select(sources: Iterable[ArtifactSource], families: Iterable[str]) -> list[ArtifactSource]:
    """The artifacts a build of ``families`` reads: generic ones and those of the families."""
    wanted = {GENERIC, *families}
    return [source for source in sources if source.name.family in wanted]


def read_artifact(source: ArtifactSource, *, extract_to: Path) -> Artifact:
    """Read (extracting first, if an archive) one artifact's installed tree."""
    root = source.path
    if source.is_archive:
        root = extract_archive(source.path, extract_to / str(source.name))
    return Artifact(name=source.name, root=root, files=tuple(_walk_tree(source.name, root)))


def _stage_roots(name: ArtifactName, root: Path) -> list[Path]:
    manifest = root / MANIFEST
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ArtifactError(
            root,
            f"{MANIFEST} is missing",
            hint="every TheRock artifact lists its stage roots in "
            f"{MANIFEST}; re-create the artifact",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(manifest, f"cannot read: {exc}") from None
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
    for stage in _stage_roots(name, root):
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
    pending = [stage]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                rel = path.relative_to(stage).as_posix()
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    target = str(path.readlink())
                    _check_link(name, stage, rel, target)
                    yield StagedFile(
                        artifact=name,
                        path=rel,
                        source=path,
                        kind="symlink",
                        size=0,
                        link_target=target,
                    )
                elif stat.S_ISDIR(info.st_mode):
                    pending.append(path)
                elif stat.S_ISREG(info.st_mode):
                    yield StagedFile(
                        artifact=name,
                        path=rel,
                        source=path,
                        kind="file",
                        size=info.st_size,
                        executable=bool(info.st_mode & 0o111),
                    )
                else:
                    raise ArtifactError(
                        path,
                        "is a device, socket or pipe; artifacts may only "
                        "hold files, directories and symlinks",
                    )


def _check_link(name: ArtifactName, stage: Path, rel: str, target: str) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
        raise ArtifactError(
            stage / rel,
            f"symlink to {target!r} leaves artifact {name}",
            hint="symlinks in artifacts must be relative and stay inside the tree",
        )
