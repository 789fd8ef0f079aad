"""What an index is made from: the wheels in a dist directory, its build manifest, their METADATA.

sha256 and size come from ``build-manifest.json`` when it lists the file (the build already
hashed it); only files it does not list are hashed here. METADATA is read from each wheel's
central directory and one small member, never the whole wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from wheelyard.errors import IndexError_, format_list
from wheelyard.index.render import IndexFile, parse_filename
from wheelyard.wheelfile import hash_file

MANIFEST_NAME = "build-manifest.json"
GENERIC = "generic"
_MAX_METADATA = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ManifestFile:
    path: str
    """Relative to the manifest's directory, posix separators."""
    sha256: str
    size: int
    package: str
    family: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class BuildManifest:
    path: Path
    families: tuple[str, ...]
    files: tuple[ManifestFile, ...]


@dataclass(frozen=True, kw_only=True)
class WheelMetadata:
    """The parts of a wheel's METADATA an index needs, and the bytes for the sidecar."""

    raw: bytes = field(repr=False)
    sha256: str
    name: str
    version: str
    requires_python: str | None
    requires_dist: tuple[str, ...]
    provides_extra: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LocalWheel:
    """A wheel on disk below the dist root, ready to be listed."""

    entry: IndexFile
    metadata: WheelMetadata
    namespace: str
    """``generic`` for files at the top of dist/, else the family directory."""
    kind: str | None
    """``runtime``, ``devel`` or ``meta`` from the manifest; ``None`` when it does not list it."""


def read_build_manifest(path: Path) -> BuildManifest:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        files = tuple(
            ManifestFile(
                path=str(item["path"]),
                sha256=str(item["sha256"]),
                size=int(item["size"]),
                package=str(item["package"]),
                family=str(item["family"]),
                kind=str(item["kind"]),
            )
            for item in document["files"]
        )
        families = tuple(str(name) for name in document["families"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexError_(
            f"{path}: cannot read the build manifest ({error!r})",
            hint="rerun `wheelyard build`, or pass --manifest pointing at its build-manifest.json",
        ) from None
    return BuildManifest(path=path, families=families, files=files)


def parse_metadata(raw: bytes, source: str) -> WheelMetadata:
    """Parse METADATA headers (RFC 822 style; the description body is ignored)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise IndexError_(
            f"{source}: METADATA has no Name or Version",
            hint="rebuild the wheel; its .dist-info/METADATA is damaged",
        )
    requires_python = headers.get("Requires-Python")
    return WheelMetadata(
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        name=str(name).strip(),
        version=str(version).strip(),
        requires_python=str(requires_python).strip() if requires_python else None,
        requires_dist=tuple(str(v).strip() for v in headers.get_all("Requires-Dist") or ()),
        provides_extra=tuple(str(v).strip() for v in headers.get_all("Provides-Extra") or ()),
    )


def read_wheel_metadata(path: Path) -> WheelMetadata:
    """METADATA of the one top-level ``*.dist-info`` directory of a wheel."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(members) != 1:
                raise IndexError_(
                    f"{path}: expected one .dist-info/METADATA, found {len(members)}",
                    hint="rebuild the wheel; every wheel needs exactly one .dist-info directory",
                )
            if members[0].file_size > _MAX_METADATA:
                raise IndexError_(f"{path}: METADATA is larger than 16 MiB", hint="rebuild it")
            raw = archive.read(members[0])
    except (OSError, zipfile.BadZipFile) as error:
        raise IndexError_(
            f"{path}: cannot read the wheel ({error})", hint="rebuild or re-download it"
        ) from None
    return parse_metadata(raw, str(path))


def _relative_to_dist(path: Path, dist: Path) -> str | None:
    try:
        return Path(os.path.normpath(path.absolute())).relative_to(dist).as_posix()
    except ValueError:
        return None


def scan_dist(
    dist: Path,
    manifest: BuildManifest | None,
    *,
    known: Mapping[str, tuple[str, int]] | None = None,
) -> list[LocalWheel]:
    """Every wheel in ``dist/`` (generic) and ``dist/<family>/``, with hashes and METADATA.

    ``known`` maps dist-relative paths to (sha256, size) already recorded elsewhere (an index
    being merged in place); those are trusted when the size on disk matches.
    """
    root = Path(os.path.normpath(dist.absolute()))
    if not root.is_dir():
        raise IndexError_(
            f"{dist}: no such directory", hint="pass --dist the build's dist/ directory"
        )
    listed: dict[str, ManifestFile] = {}
    problems: list[str] = []
    if manifest is not None:
        for item in manifest.files:
            relative = _relative_to_dist(manifest.path.parent / item.path, root)
            if relative is None:
                problems.append(f"{item.path}: listed by the manifest but not under {dist}")
            else:
                listed[relative] = item
    on_disk = sorted(
        [p.name for p in root.glob("*.whl") if p.is_file()]
        + [
            f"{child.name}/{p.name}"
            for child in sorted(root.iterdir())
            if child.is_dir() and not child.name.startswith(".")
            for p in child.glob("*.whl")
            if p.is_file()
        ]
    )
    for relative in sorted(set(listed) - set(on_disk)):
        problems.append(f"{relative}: listed by the manifest but missing from {dist}")
    wheels: list[LocalWheel] = []
    for relative in on_disk:
        path = root / relative
        namespace = relative.split("/")[0] if "/" in relative else GENERIC
        recorded = listed.get(relative)
        stat_size = path.stat().st_size
        if recorded is not None:
            if recorded.size != stat_size:
                problems.append(
                    f"{relative}: {stat_size} bytes on disk, manifest says {recorded.size}"
                )
                continue
            if recorded.family != namespace:
                problems.append(f"{relative}: manifest says family {recorded.family!r}")
                continue
            sha256, size = recorded.sha256, recorded.size
        elif known is not None and relative in known and known[relative][1] == stat_size:
            sha256, size = known[relative]
        else:
            sha256, size = hash_file(path)
        project, version = parse_filename(path.name)
        metadata = read_wheel_metadata(path)
        entry = IndexFile(
            filename=path.name,
            project=project,
            version=version,
            location=relative,
            sha256=sha256,
            size=size,
            requires_python=metadata.requires_python,
            metadata_sha256=metadata.sha256,
        )
        kind = recorded.kind if recorded is not None else None
        wheels.append(LocalWheel(entry=entry, metadata=metadata, namespace=namespace, kind=kind))
    if problems:
        raise IndexError_(
            f"{dist} does not match its build manifest:\n" + format_list(problems),
            hint="rerun `wheelyard build` so dist/ and build-manifest.json agree, "
            "or pass --manifest for the build that made this dist",
        )
    return wheels
