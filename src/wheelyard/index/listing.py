"""Files listed by index pages: PEP 503 HTML (flat or project pages) and PEP 691 JSON.

Every link is resolved against its page and must be an http(s) URL (or, in a local index, a
relative path); ``javascript:``, ``data:``, ``file:`` and other schemes are refused. Filenames
and project names must be usable as single path components (see ``parse_filename``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from wheelyard.errors import IndexError_
from wheelyard.index.confine import shown
from wheelyard.index.fetch import SCHEMES, url_scheme
from wheelyard.index.render import IndexFile, is_url, parse_filename

FileLink = tuple[IndexFile, bool]
"""A listed file and whether its size still has to be looked up (HTML gives none)."""


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
    url: str, sha256: object, size: int | None, attrs: Mapping[str, object], source: str
) -> FileLink:
    """IndexFile for one listed file; the flag says the size still has to be looked up."""
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not isinstance(sha256, str):
        raise IndexError_(
            f"{shown(source)}: '{shown(filename, limit=200)}' is listed without a sha256",
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


def check_link(target: str, page: str, *, remote: bool) -> None:
    """Refuse a link that is not http(s) (``javascript:``, ``data:``, ``file:``...).

    On a fetched page every link, resolved against the page, must be an absolute http(s) URL;
    in a local index a link may also be a relative path, but never another scheme.
    """
    scheme = url_scheme(target)
    if (is_url(target) and scheme in SCHEMES) or (not remote and scheme is None):
        return
    raise IndexError_(
        f"{shown(page, limit=200)}: refusing the link '{shown(target, limit=80)}': only http(s) "
        "links are merged",
        hint="merge only from an index whose links are http(s) URLs or relative paths",
    )


def files_from_html(body: bytes, url: str, source: str) -> tuple[list[FileLink], list[str]]:
    """(files, project page URLs) of an HTML page: a flat/project page or a simple root."""
    parser = _LinkParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    base = urljoin(url, parser.base) if parser.base else url
    check_link(base, url, remote=True)
    files: list[FileLink] = []
    projects: list[str] = []
    for anchor in parser.anchors:
        href = anchor.attrs.get("href")
        if not href:
            continue
        target, _, fragment = urljoin(base, href).partition("#")
        check_link(target, url, remote=True)
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


def load_json(body: bytes, where: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise IndexError_(
            f"{shown(where)}: JSON nested too deeply", hint="check the index given to --merge-from"
        ) from None
    except ValueError as error:
        raise IndexError_(
            f"{shown(where)}: not valid JSON ({error})",
            hint="check the index given to --merge-from",
        ) from None


def files_from_json(document: object, url: str, source: str) -> list[FileLink]:
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise IndexError_(
            f"{shown(url or source)}: not a PEP 691 project page", hint="check --merge-from"
        )
    files: list[FileLink] = []
    for item in document["files"]:
        try:
            hashes = item.get("hashes") or {}
            size = item.get("size")
            target = urljoin(url, str(item["url"])).partition("#")[0]
            digest = hashes.get("sha256")
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise IndexError_(
                f"{shown(url or source)}: malformed PEP 691 file entry ({shown(repr(error))})",
                hint="check the index given to --merge-from",
            ) from None
        check_link(target, url or source, remote=bool(url))
        sized = size if isinstance(size, int) and not isinstance(size, bool) else None
        sized = sized if sized is None or sized >= 0 else None
        files.append(_file_from_link(target, digest, sized, item, source))
    return files
