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

import json
import posixpath
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from wheelyard.errors import IndexError_, format_list
from wheelyard.index.render import (
    JSON_CONTENT_TYPE,
    JSON_NAME,
    SIMPLE_DIR,
    IndexFile,
    is_url,
    parse_filename,
)


@dataclass(frozen=True, kw_only=True)
class Response:
    url: str
    """Final URL after redirects: the base for relative links."""
    status: int
    content_type: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


Fetch = Callable[[str, str, str], Response]
"""(method, url, accept) -> response; a 404 is a response, other failures raise IndexError_."""


def urllib_fetch(method: str, url: str, accept: str) -> Response:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - http(s) only
            headers = {key.lower(): value for key, value in reply.headers.items()}
            return Response(
                url=reply.geturl(),
                status=reply.status,
                content_type=headers.get("content-type", ""),
                headers=headers,
                body=reply.read(),
            )
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return Response(url=url, status=404, content_type="", headers={}, body=b"")
        raise IndexError_(
            f"{url}: HTTP {error.code} {error.reason}", hint="check the URL given to --merge-from"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise IndexError_(
            f"{url}: cannot fetch ({error})", hint="check the URL given to --merge-from"
        ) from None


@dataclass(frozen=True, kw_only=True)
class ExistingIndex:
    """Files of an existing index by family namespace."""

    source: str
    root: Path | None
    """The local dist directory, or ``None`` for a URL (then every location is a URL)."""
    namespaces: Mapping[str, tuple[IndexFile, ...]]


@dataclass(frozen=True, kw_only=True)
class _Anchor:
    attrs: Mapping[str, str | None]
    text: str


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[_Anchor] = []
        self.base: str | None = None
        self._open: tuple[dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = (dict(attrs), [])
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append(_Anchor(attrs=self._open[0], text="".join(self._open[1])))
            self._open = None


_DIGEST = re.compile(r"^sha256=([0-9a-f]{64})$")


def _metadata_digest(value: object) -> str | None:
    if isinstance(value, dict):
        digest = value.get("sha256")
        return digest if isinstance(digest, str) else None
    if isinstance(value, str):
        match = _DIGEST.match(value)
        return match.group(1) if match else None
    return None


def _file_from_link(
    url: str, sha256: str | None, size: int | None, attrs: Mapping[str, object], source: str
) -> tuple[IndexFile, bool]:
    """IndexFile for one listed file; the flag says the size still has to be looked up."""
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if sha256 is None:
        raise IndexError_(
            f"{source}: {filename} is listed without a sha256",
            hint="merge only from indexes that give a sha256 for every file",
        )
    project, version = parse_filename(filename)
    yanked = attrs.get("yanked")
    requires_python = attrs.get("requires-python")
    entry = IndexFile(
        filename=filename,
        project=project,
        version=version,
        location=url,
        sha256=sha256.lower(),
        size=size if size is not None else 0,
        requires_python=requires_python if isinstance(requires_python, str) else None,
        metadata_sha256=_metadata_digest(attrs.get("core-metadata"))
        or _metadata_digest(attrs.get("dist-info-metadata")),
        yanked=None if yanked in (None, False) else (yanked if isinstance(yanked, str) else ""),
    )
    return entry, size is None


def _files_from_html(
    body: bytes, url: str, source: str
) -> tuple[list[tuple[IndexFile, bool]], list[str]]:
    """(files, project page URLs) of an HTML page: a flat/project page or a simple root."""
    parser = _LinkParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    base = urljoin(url, parser.base) if parser.base else url
    files: list[tuple[IndexFile, bool]] = []
    projects: list[str] = []
    for anchor in parser.anchors:
        href = anchor.attrs.get("href")
        if not href:
            continue
        target, _, fragment = urljoin(base, href).partition("#")
        if urlsplit(target).path.endswith("/"):
            projects.append(target)
            continue
        digest = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        attrs = {
            key[len("data-") :]: ("" if value is None else value)
            for key, value in anchor.attrs.items()
            if key.startswith("data-")
        }
        files.append(_file_from_link(target, digest, None, attrs, source))
    return files, projects


def _load_json(body: bytes, where: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise IndexError_(
            f"{where}: not valid JSON ({error})", hint="check the index given to --merge-from"
        ) from None


def _files_from_json(document: object, url: str, source: str) -> list[tuple[IndexFile, bool]]:
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise IndexError_(f"{url}: not a PEP 691 project page", hint="check --merge-from")
    files: list[tuple[IndexFile, bool]] = []
    for item in document["files"]:
        try:
            hashes = item.get("hashes") or {}
            size = item.get("size")
            target = urljoin(url, item["url"]).partition("#")[0]
            digest = hashes.get("sha256")
        except (KeyError, TypeError, AttributeError) as error:
            raise IndexError_(
                f"{url or source}: malformed PEP 691 file entry ({error!r})",
                hint="check the index given to --merge-from",
            ) from None
        sized = size if isinstance(size, int) and not isinstance(size, bool) else None
        files.append(_file_from_link(target, digest, sized, item, source))
    return files


def _family_from_url(url: str) -> str:
    parts = [part for part in urlsplit(url).path.split("/") if part]
    if parts and parts[-1] in ("index.html", JSON_NAME):
        parts.pop()
    if parts and parts[-1] == SIMPLE_DIR:
        parts.pop()
    if not parts:
        raise IndexError_(
            f"{url}: cannot tell which family this index is for",
            hint="name it: --merge-from FAMILY=URL",
        )
    return unquote(parts[-1])


def read_index_url(
    url: str, *, family: str | None = None, fetch: Fetch = urllib_fetch
) -> ExistingIndex:
    """Files listed by a remote flat page or simple root, with absolute URLs."""
    accept = f"{JSON_CONTENT_TYPE}, text/html;q=0.5"
    page = fetch("GET", url, accept)
    if page.status != 200:
        raise IndexError_(f"{url}: HTTP {page.status}", hint="check the URL given to --merge-from")
    found: list[tuple[IndexFile, bool]] = []
    if page.content_type.startswith(JSON_CONTENT_TYPE):
        document = _load_json(page.body, page.url)
        try:
            projects = [urljoin(page.url, f"{p['name']}/") for p in document.get("projects", [])]
        except (KeyError, TypeError, AttributeError) as error:
            raise IndexError_(
                f"{page.url}: not a PEP 691 page ({error!r})", hint="check --merge-from"
            ) from None
        if "files" in document:
            found.extend(_files_from_json(document, page.url, url))
    else:
        page_files, projects = _files_from_html(page.body, page.url, url)
        found.extend(page_files)
    for project_url in sorted(set(projects)):
        # Our own static pages have the JSON (with sizes) beside the HTML; try it first.
        reply = fetch("GET", urljoin(project_url, JSON_NAME), JSON_CONTENT_TYPE)
        if reply.status == 200 and reply.content_type.startswith(
            ("application/json", JSON_CONTENT_TYPE)
        ):
            found.extend(_files_from_json(_load_json(reply.body, reply.url), reply.url, url))
            continue
        reply = fetch("GET", project_url, accept)
        if reply.status != 200:
            raise IndexError_(f"{project_url}: HTTP {reply.status}", hint="is the index complete?")
        if reply.content_type.startswith(JSON_CONTENT_TYPE):
            found.extend(_files_from_json(_load_json(reply.body, reply.url), reply.url, url))
        else:
            found.extend(_files_from_html(reply.body, reply.url, url)[0])
    files = [_with_size(entry, fetch) if unsized else entry for entry, unsized in found]
    name = family or _family_from_url(url)
    return ExistingIndex(source=url, root=None, namespaces={name: _unique(files, url)})


def _with_size(entry: IndexFile, fetch: Fetch) -> IndexFile:
    reply = fetch("HEAD", entry.location, "*/*")
    length = reply.headers.get("content-length")
    if reply.status != 200 or length is None or not length.isdigit():
        raise IndexError_(
            f"{entry.location}: the index gives no size and HEAD gave none (HTTP {reply.status})",
            hint="merge from the simple index (its JSON pages carry sizes) or fix the server",
        )
    return replace(entry, size=int(length))


def read_index_dir(root: Path) -> ExistingIndex:
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
        document = _load_json(simple_root.read_bytes(), str(simple_root))
        try:
            projects = sorted(str(p["name"]) for p in document["projects"])
        except (KeyError, TypeError) as error:
            raise IndexError_(
                f"{simple_root}: not a PEP 691 root page ({error!r})",
                hint="re-index that directory",
            ) from None
        files: list[IndexFile] = []
        for project in projects:
            page_dir = f"{family}/{SIMPLE_DIR}/{project}"
            page = root / page_dir / JSON_NAME
            if not page.is_file():
                raise IndexError_(f"{page}: missing", hint="re-index that directory")
            listed = _files_from_json(_load_json(page.read_bytes(), str(page)), "", str(page))
            for entry, _unsized in listed:
                files.append(_localise(entry, page_dir, root))
        namespaces[family] = _unique(files, str(root))
    return ExistingIndex(source=str(root), root=root, namespaces=namespaces)


def _localise(entry: IndexFile, page_dir: str, root: Path) -> IndexFile:
    if is_url(entry.location):
        return entry
    location = posixpath.normpath(posixpath.join(page_dir, unquote(entry.location)))
    if location.startswith("../") or location.startswith("/"):
        raise IndexError_(
            f"{root}: {entry.filename} is linked outside the index directory ({entry.location})",
            hint="merge from the dist directory that holds the files",
        )
    return replace(entry, location=location)


def _unique(files: Iterable[IndexFile], source: str) -> tuple[IndexFile, ...]:
    by_name: dict[str, IndexFile] = {}
    for entry in files:
        seen = by_name.setdefault(entry.filename, entry)
        if seen.sha256 != entry.sha256:
            raise IndexError_(
                f"{source}: {entry.filename} is listed twice with different sha256",
                hint="repair that index before merging into it",
            )
    return tuple(sorted(by_name.values(), key=lambda item: item.filename))


def read_existing_index(source: str, *, fetch: Fetch = urllib_fetch) -> ExistingIndex:
    """An index given to ``--merge-from``: ``DIR``, ``URL`` or ``FAMILY=URL``."""
    family, sep, rest = source.partition("=")
    if sep and is_url(rest) and "/" not in family and ":" not in family:
        return read_index_url(rest, family=family, fetch=fetch)
    if is_url(source):
        return read_index_url(source, fetch=fetch)
    path = Path(source)
    if not path.is_dir():
        raise IndexError_(
            f"--merge-from {source}: neither a directory nor an http(s) URL",
            hint="pass a dist directory indexed by wheelyard, "
            "or the URL of a flat page or simple root",
        )
    return read_index_dir(path)


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
