"""Which objects an upload writes: the dist tree as it stands, keyed, hashed and ordered.

The dist root maps to the run's ``python/`` directory. ``--group`` picks family directories;
the files at the top of the dist (generic wheels, their sidecars, the landing page) go with
every group, since every family page links to them. Before anything is sent, every link of
every selected flat page (and each advertised ``.metadata`` sidecar) must resolve to a planned
object, so an incomplete set is never published.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wheelyard.errors import UploadError, format_list
from wheelyard.upload.layout import (
    PHASES,
    SAFE_NAME,
    Phase,
    RunLocation,
    cache_control,
    content_type,
    phase,
)
from wheelyard.wheelfile import FileDigest, hash_file

MANIFEST_NAME = "build-manifest.json"
FLAT_PAGE = "index.html"


@dataclass(frozen=True, kw_only=True)
class PlannedObject:
    relative: str
    """Path below the dist root, posix separators."""
    key: str
    source: Path
    size: int
    sha256: str
    phase: Phase
    content_type: str
    cache_control: str

    @property
    def immutable(self) -> bool:
        """Package files and sidecars are written once; pages may be replaced."""
        return self.phase in ("file", "metadata")


@dataclass(frozen=True, kw_only=True)
class UploadPlan:
    location: RunLocation
    dist: Path
    groups: tuple[str, ...]
    objects: tuple[PlannedObject, ...]
    """In upload order: files, sidecars, pages, flat pages."""

    @property
    def size(self) -> int:
        return sum(item.size for item in self.objects)

    def find_links_urls(self) -> dict[str, str]:
        return {group: self.location.find_links_url(group) for group in self.groups}


def read_manifest_digests(manifest: Path, dist: Path) -> dict[str, FileDigest]:
    """sha256 and size of the files ``build-manifest.json`` lists, by dist-relative path."""
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        entries = [(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in document["files"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UploadError(
            f"{manifest}: cannot read the build manifest ({error!r})",
            hint="rerun `wheelyard build`, or pass --manifest with its build-manifest.json",
        ) from None
    digests = {}
    dist_abs = dist.resolve()
    for path, sha256, size in entries:
        absolute = (manifest.parent / path).resolve()
        if absolute.is_relative_to(dist_abs):
            digests[absolute.relative_to(dist_abs).as_posix()] = FileDigest(sha256, size)
    return digests


def _files_below(dist: Path, top: str) -> list[str]:
    """Regular files below ``dist/top``, or directly in ``dist`` for ``top=""``.

    Hidden names (temporary files of an interrupted index write) are left out; a symlink or
    any other special file is an error, since its target could lie anywhere.
    """
    found: list[str] = []
    for directory, dirs, files in os.walk(dist / top if top else dist):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if top and not d.startswith("."))
        for name in sorted(n for n in (*dirs, *files) if not n.startswith(".")):
            path = here / name
            if path.is_symlink() or not (path.is_file() or name in dirs):
                raise UploadError(
                    f"{path} is a symlink or special file",
                    hint="the dist tree holds regular files only; rebuild and re-index it",
                )
            if name in files:
                found.append(path.relative_to(dist).as_posix())
    return found


def available_groups(dist: Path) -> list[str]:
    """Family directories of an indexed dist: safely named ones holding a flat ``index.html``."""
    if not dist.is_dir():
        raise UploadError(f"{dist}: no such directory", hint="pass --dist DIR (build/dist)")
    return sorted(
        entry.name
        for entry in os.scandir(dist)
        if entry.is_dir(follow_symlinks=False)
        and SAFE_NAME.fullmatch(entry.name)
        and (Path(entry.path) / FLAT_PAGE).is_file()
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, bool]] = []
        """(href, whether a .metadata sidecar is advertised)."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        href = values.get("href")
        if tag == "a" and href:
            sidecar = "data-core-metadata" in values or "data-dist-info-metadata" in values
            self.links.append((href, sidecar))


def unresolved_links(dist: Path, group: str, planned: set[str]) -> list[str]:
    """Links of ``group``'s flat page (and their sidecars) that no planned object serves."""
    parser = _Links()
    parser.feed((dist / group / FLAT_PAGE).read_text(encoding="utf-8"))
    missing = []
    for href, sidecar in parser.links:
        if urlsplit(href).scheme or href.startswith("/"):
            continue  # merged by URL from another index: served from there
        target = posixpath.normpath(posixpath.join(group, unquote(href.split("#", 1)[0])))
        for needed in (target, f"{target}.metadata") if sidecar else (target,):
            if needed not in planned:
                missing.append(f"{group}/{FLAT_PAGE} links {needed}")
    return missing


def _digests(
    dist: Path,
    relatives: Sequence[str],
    listed: Mapping[str, FileDigest],
    hasher: Callable[[Path], FileDigest],
) -> dict[str, FileDigest]:
    """sha256 and size per file: from the manifest when it lists the file, else hashed."""
    result: dict[str, FileDigest] = {}
    to_hash = []
    for relative in relatives:
        known = listed.get(relative)
        size = (dist / relative).stat().st_size
        if known is None:
            to_hash.append(relative)
        elif known.size != size:
            raise UploadError(
                f"{dist / relative} is {size} bytes but the build manifest says {known.size}",
                hint="the dist changed after the build: rebuild, or re-run `wheelyard index`",
            )
        else:
            result[relative] = known
    with ThreadPoolExecutor(max_workers=4) as pool:
        result.update(zip(to_hash, pool.map(lambda r: hasher(dist / r), to_hash), strict=True))
    return result


def plan_upload(
    *,
    dist: Path,
    location: RunLocation,
    groups: Sequence[str] = (),
    manifest: Path | None = None,
    hasher: Callable[[Path], FileDigest] = hash_file,
) -> UploadPlan:
    """Every object of the selected groups with its key, sha256 and headers; sends nothing.

    ``groups`` empty means every indexed family of the dist. ``manifest`` defaults to
    ``build-manifest.json`` beside the dist, when there is one.
    """
    present = available_groups(dist)
    selected = sorted(set(groups)) if groups else present
    unknown = [group for group in selected if group not in present]
    if unknown or not selected:
        raise UploadError(
            f"{dist}: no indexed family directory for {', '.join(unknown) or 'any family'}"
            f" (indexed: {', '.join(present) or 'none'})",
            hint="run `wheelyard build FAMILY... --out DIR` and `wheelyard index --dist DIR/dist`",
        )
    relatives = _files_below(dist, "")
    for group in selected:
        relatives += _files_below(dist, group)
    planned = set(relatives)
    missing = [link for group in selected for link in unresolved_links(dist, group, planned)]
    if missing:
        raise UploadError(
            "the index links files the dist does not hold:\n" + format_list(missing),
            hint="rebuild and re-index the dist; an incomplete set is never uploaded",
        )
    manifest_path = manifest if manifest is not None else dist.parent / MANIFEST_NAME
    listed = {}
    if manifest is not None or manifest_path.is_file():
        listed = read_manifest_digests(manifest_path, dist)
    digests = _digests(dist, relatives, listed, hasher)
    objects = [
        PlannedObject(
            relative=relative,
            key=location.key(relative),
            source=dist / relative,
            size=digests[relative].size,
            sha256=digests[relative].sha256,
            phase=phase(relative),
            content_type=content_type(relative),
            cache_control=cache_control(relative),
        )
        for relative in relatives
    ]
    objects.sort(key=lambda item: (PHASES.index(item.phase), -item.relative.count("/"), item.key))
    return UploadPlan(location=location, dist=dist, groups=tuple(selected), objects=tuple(objects))
