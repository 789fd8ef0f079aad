"""Reading an existing index so a new build can be merged into it.

Two sources are understood:

- a local dist directory written by ``wheelyard index``: its ``<family>/simple/**/index.json``
  pages are read; the files they list are relative to that directory;
- an http(s) URL of one family's flat page or simple root (ours or any PEP 503/691 index):
  the files keep their absolute URLs. The family is the URL's directory name
  (``.../<family>/index.html``, ``.../<family>/simple/``) unless given as ``FAMILY=URL``.

Merging keeps every file already listed, adds the new ones, and refuses a filename whose
sha256 would change: a published file name must never point at other bytes.
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from wheelyard.errors import IndexError_, format_list
from wheelyard.index.confine import KnownFamilies, check_component, check_family, shown
from wheelyard.index.fetch import (
    Fetch,
    FetchLimits,
    Response,
    check_scheme,
    http_fetch,
    url_scheme,
)
from wheelyard.index.listing import (
    FileLink,
    check_link,
    files_from_html,
    files_from_json,
    load_json,
)
from wheelyard.index.render import JSON_CONTENT_TYPE, JSON_NAME, SIMPLE_DIR, IndexFile, is_url


@dataclass(frozen=True, kw_only=True)
class ExistingIndex:
    """Files of an existing index by family namespace."""

    source: str
    root: Path | None
    """The local dist directory, or ``None`` for a URL (then every location is a URL)."""
    namespaces: Mapping[str, tuple[IndexFile, ...]]


def _family_from_url(url: str) -> str:
    """The family a URL's path names: ``.../<family>/index.html`` or ``.../<family>/simple/``."""
    parts = [part for part in urlsplit(url).path.split("/") if part]
    if parts and parts[-1] in ("index.html", JSON_NAME):
        parts.pop()
    if parts and parts[-1] == SIMPLE_DIR:
        parts.pop()
    if not parts:
        raise IndexError_(
            f"--merge-from {shown(url, limit=200)}: cannot tell which family this index is for",
            hint="name it: --merge-from FAMILY=URL",
        )
    return unquote(parts[-1])


def _project_urls(document: Any, page: Response) -> list[str]:
    try:
        names = [str(item["name"]) for item in document.get("projects", [])]
    except (KeyError, TypeError, AttributeError) as error:
        raise IndexError_(
            f"{shown(page.url)}: not a PEP 691 page ({shown(repr(error))})",
            hint="check --merge-from",
        ) from None
    urls = [urljoin(page.url, f"{name}/") for name in names]
    for target in urls:
        check_link(target, page.url, remote=True)
    return urls


def _project_files(project_url: str, source: str, fetch: Fetch) -> list[FileLink]:
    # Our own static pages have the JSON (with sizes) beside the HTML; try it first.
    reply = fetch("GET", urljoin(project_url, JSON_NAME), JSON_CONTENT_TYPE)
    if reply.status == 200 and reply.content_type.startswith(
        ("application/json", JSON_CONTENT_TYPE)
    ):
        return files_from_json(load_json(reply.body, reply.url), reply.url, source)
    reply = fetch("GET", project_url, f"{JSON_CONTENT_TYPE}, text/html;q=0.5")
    if reply.status != 200:
        raise IndexError_(
            f"{shown(project_url)}: HTTP {reply.status}", hint="is the index complete?"
        )
    if reply.content_type.startswith(JSON_CONTENT_TYPE):
        return files_from_json(load_json(reply.body, reply.url), reply.url, source)
    return files_from_html(reply.body, reply.url, source)[0]


def read_index_url(
    url: str,
    *,
    family: str | None = None,
    fetch: Fetch = http_fetch,
    known: KnownFamilies | None = None,
) -> ExistingIndex:
    """Files listed by a remote flat page or simple root, with absolute URLs.

    The family (from ``family`` or the URL's path) is checked before anything is fetched.
    """
    where = f"--merge-from {shown(url, limit=200)}"
    check_scheme(url, where)
    name = family if family is not None else _family_from_url(url)
    check_family(name, where, known)
    page = fetch("GET", url, f"{JSON_CONTENT_TYPE}, text/html;q=0.5")
    if page.status != 200:
        raise IndexError_(
            f"{where}: HTTP {page.status}", hint="check the URL given to --merge-from"
        )
    found: list[FileLink] = []
    if page.content_type.startswith(JSON_CONTENT_TYPE):
        document = load_json(page.body, page.url)
        if not isinstance(document, dict):
            raise IndexError_(f"{shown(page.url)}: not a PEP 691 page", hint="check --merge-from")
        projects = _project_urls(document, page)
        if "files" in document:
            found.extend(files_from_json(document, page.url, url))
    else:
        page_files, projects = files_from_html(page.body, page.url, url)
        found.extend(page_files)
    for project_url in sorted(set(projects)):
        found.extend(_project_files(project_url, url, fetch))
    files = [_with_size(entry, fetch) if unsized else entry for entry, unsized in found]
    return ExistingIndex(source=url, root=None, namespaces={name: _unique(files, url)})


def _with_size(entry: IndexFile, fetch: Fetch) -> IndexFile:
    reply = fetch("HEAD", entry.location, "*/*")
    length = reply.headers.get("content-length")
    if reply.status != 200 or length is None or not length.isdigit():
        raise IndexError_(
            f"{shown(entry.location)}: the index gives no size and HEAD gave none "
            f"(HTTP {reply.status})",
            hint="merge from the simple index (its JSON pages carry sizes) or fix the server",
        )
    return replace(entry, size=int(length))


def _read_page(path: Path, limit: int) -> Any:
    """A JSON page of a local index: a regular file of at most ``limit`` bytes."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise IndexError_(
                f"{path}: not a regular file of at most {limit} bytes",
                hint="re-index that directory",
            )
        return load_json(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise IndexError_(f"{path}: missing", hint="re-index that directory") from None


def read_index_dir(
    root: Path, *, known: KnownFamilies | None = None, limit: int = FetchLimits().max_bytes
) -> ExistingIndex:
    """Files listed by the JSON pages of a dist directory indexed by wheelyard."""
    roots = sorted(root.glob(f"*/{SIMPLE_DIR}/{JSON_NAME}"))
    if not roots:
        raise IndexError_(
            f"{root}: no <family>/{SIMPLE_DIR}/{JSON_NAME} found",
            hint="pass the dist directory of an index written by `wheelyard index`",
        )
    namespaces: dict[str, tuple[IndexFile, ...]] = {}
    for simple_root in roots:
        family = simple_root.parent.parent.name
        check_family(family, f"--merge-from {root}", known)
        document = _read_page(simple_root, limit)
        try:
            projects = sorted(str(p["name"]) for p in document["projects"])
        except (KeyError, TypeError) as error:
            raise IndexError_(
                f"{simple_root}: not a PEP 691 root page ({shown(repr(error))})",
                hint="re-index that directory",
            ) from None
        files: list[IndexFile] = []
        for project in projects:
            check_component(project, "project", str(simple_root), hint="re-index that directory")
            page_dir = f"{family}/{SIMPLE_DIR}/{project}"
            page = root / page_dir / JSON_NAME
            listed = files_from_json(_read_page(page, limit), "", str(page))
            for entry, _unsized in listed:
                files.append(_localise(entry, page_dir, root))
        namespaces[family] = _unique(files, str(root))
    return ExistingIndex(source=str(root), root=root, namespaces=namespaces)


def _localise(entry: IndexFile, page_dir: str, root: Path) -> IndexFile:
    if is_url(entry.location):
        return entry
    location = posixpath.normpath(posixpath.join(page_dir, unquote(entry.location)))
    if location.startswith("../") or location.startswith("/") or location == "..":
        raise IndexError_(
            f"{root}: {entry.filename} is linked outside the index directory "
            f"({shown(entry.location)})",
            hint="merge from the dist directory that holds the files",
        )
    return replace(entry, location=location)


def _unique(files: Iterable[IndexFile], source: str) -> tuple[IndexFile, ...]:
    by_name: dict[str, IndexFile] = {}
    for entry in files:
        seen = by_name.setdefault(entry.filename, entry)
        if seen.sha256 != entry.sha256:
            raise IndexError_(
                f"{shown(source)}: {entry.filename} is listed twice with different sha256",
                hint="repair that index before merging into it",
            )
    return tuple(sorted(by_name.values(), key=lambda item: item.filename))


def read_existing_index(
    source: str, *, fetch: Fetch = http_fetch, known: KnownFamilies | None = None
) -> ExistingIndex:
    """An index given to ``--merge-from``: ``DIR``, ``URL`` or ``FAMILY=URL``.

    Only http(s) URLs are fetched; any other scheme (``file:``, ``ftp:``, ``data:``) is refused
    rather than read as a path. ``known`` (the profile's families) checks every family name.
    """
    family, sep, rest = source.partition("=")
    if sep and url_scheme(source) is None and url_scheme(rest) is not None:
        return read_index_url(rest, family=family, fetch=fetch, known=known)
    if url_scheme(source) is not None:
        return read_index_url(source, fetch=fetch, known=known)
    path = Path(source)
    if not path.is_dir():
        raise IndexError_(
            f"--merge-from {shown(source, limit=200)}: neither a directory nor an http(s) URL",
            hint="pass a dist directory indexed by wheelyard (./NAME if its name has a ':'), "
            "or the URL of a flat page or simple root",
        )
    return read_index_dir(path, known=known)


@dataclass(frozen=True, kw_only=True)
class KeptFile:
    """A file only an existing index lists, and the directory its location is relative to."""

    entry: IndexFile
    root: Path | None
    """The existing index's dist directory; ``None`` when the location is a URL."""


@dataclass(frozen=True, kw_only=True)
class MergedNamespace:
    name: str
    files: tuple[IndexFile, ...]
    kept: tuple[KeptFile, ...]
    """Files listed only by the existing indexes (not in the new build)."""


def merge_namespaces(
    new: Mapping[str, Sequence[IndexFile]], existing: Sequence[ExistingIndex]
) -> dict[str, MergedNamespace]:
    """New files plus every file the existing indexes list; refuse any changed sha256."""
    conflicts: list[str] = []
    merged: dict[str, dict[str, IndexFile]] = {
        name: {entry.filename: entry for entry in files} for name, files in new.items()
    }
    kept: dict[str, dict[str, KeptFile]] = {}
    for index in existing:
        for name, files in sorted(index.namespaces.items()):
            current = merged.setdefault(name, {})
            for entry in files:
                present = current.get(entry.filename)
                if present is None:
                    current[entry.filename] = entry
                    kept.setdefault(name, {})[entry.filename] = KeptFile(
                        entry=entry, root=None if entry.is_remote else index.root
                    )
                elif present.sha256 != entry.sha256:
                    conflicts.append(
                        f"{name}: {entry.filename}: {index.source} lists sha256 {entry.sha256}, "
                        f"the new one is {present.sha256}"
                    )
    if conflicts:
        raise IndexError_(
            "files would change their content under a name already published:\n"
            + format_list(conflicts),
            hint="a published filename must keep its bytes: build a new version "
            "(for example X.Y.Z.postN) or drop the file from the new build",
        )
    return {
        name: MergedNamespace(
            name=name,
            files=tuple(sorted(files.values(), key=lambda item: item.filename)),
            kept=tuple(kept.get(name, {})[key] for key in sorted(kept.get(name, {}))),
        )
        for name, files in sorted(merged.items())
    }
