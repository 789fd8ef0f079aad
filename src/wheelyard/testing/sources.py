"""Where a family's wheels are: find-links locations, our simple index, and pip's constraints."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

from wheelyard.errors import IndexError_, WheelTestError
from wheelyard.index import FetchLimits, make_fetch
from wheelyard.report import printable

Fetch = Callable[[str], str]
_HREF = re.compile(r"""href\s*=\s*["']([^"'#]+\.whl)(?:#[^"']*)?["']""", re.IGNORECASE)
# A page of links: one deadline from connect to last byte, and a size cap (a stalled or endless
# server is given up on), through the index's bounded reader.
_FETCH = make_fetch(FetchLimits(timeout=60.0, max_bytes=16 << 20))


def http_fetch(url: str) -> str:
    """The text of ``url`` (the one network read of this module)."""
    response = _FETCH("GET", url, "text/html")
    if response.status != 200:
        raise IndexError_(
            f"{printable(url)}: HTTP {response.status}", hint="check the find-links URL"
        )
    return response.body.decode("utf-8", "replace")


@dataclass(frozen=True, kw_only=True)
class WheelLocation:
    """One of our wheels: its project, version and where an installer can read it."""

    project: str
    version: str
    location: str


@dataclass(frozen=True, kw_only=True)
class FamilySource:
    """A family's wheels: find-links arguments and the simple index beside them."""

    find_links: tuple[str, ...]
    simple_index: str
    wheels: tuple[WheelLocation, ...]


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme in {"http", "https", "file"}


def _wheel(name: str, location: str) -> WheelLocation | None:
    try:
        project, version, _, _ = parse_wheel_filename(name.rsplit("/", 1)[-1])
    except ValueError:
        return None
    return WheelLocation(project=str(project), version=str(version), location=location)


def _local(dist: Path, family: str) -> FamilySource:
    family_dir = dist / family
    if not (family_dir / "index.html").is_file():
        raise WheelTestError(
            family,
            f"{family_dir}/index.html is missing: {dist} holds no indexed wheels of {family}",
            hint=f"run `wheelyard build {family}` and `wheelyard index --dist {dist}`, "
            "or pass --find-links",
        )
    found = (_wheel(p.name, str(p)) for d in (dist, family_dir) for p in sorted(d.glob("*.whl")))
    return FamilySource(
        find_links=(str(dist), str(family_dir)),
        simple_index=(family_dir / "simple").resolve().as_uri() + "/",
        wheels=tuple(w for w in found if w is not None),
    )


def _remote(url: str, fetch: Fetch | None) -> FamilySource:
    base = url if url.endswith(("/", ".html")) else url + "/"
    wheels: list[WheelLocation] = []
    if fetch is not None:
        for href in sorted(set(_HREF.findall(fetch(url)))):
            wheel = _wheel(href, urljoin(base, href))
            if wheel is not None:
                wheels.append(wheel)
    return FamilySource(
        find_links=(url,), simple_index=urljoin(base, "simple/"), wheels=tuple(wheels)
    )


def family_source(find_links: str, family: str, *, fetch: Fetch | None = None) -> FamilySource:
    """The wheels of ``family`` under a local dist directory, or at a flat page's URL.

    ``fetch`` reads a remote page to list its wheels (needed only for pip's constraints).
    """
    if _is_url(find_links):
        return _remote(find_links, fetch)
    return _local(Path(find_links), family)


def constraints(wheels: Iterable[WheelLocation], version: str | None) -> list[str]:
    """pip constraint lines: each of our projects pinned to our wheel (or version) only."""
    by_project: dict[str, list[WheelLocation]] = {}
    for wheel in wheels:
        if version is None or wheel.version == version:
            by_project.setdefault(canonicalize_name(wheel.project), []).append(wheel)
    lines = []
    for project, found in sorted(by_project.items()):
        locations = sorted({w.location for w in found})
        if len(locations) == 1:
            target = locations[0]
            uri = target if _is_url(target) else Path(target).resolve().as_uri()
            lines.append(f"{project} @ {uri}")
        else:
            lines.append(f"{project}=={found[0].version}")
    return lines


def manifest_version(manifest: Path) -> str | None:
    """The ``version`` of a build manifest, or None when there is no manifest."""
    if not manifest.is_file():
        return None
    value = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return str(value) if value else None
