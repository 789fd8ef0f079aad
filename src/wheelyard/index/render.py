"""Package index pages as pure functions of a file list.

One namespace per GPU family: the family's files plus the generic files, served as

- ``<family>/index.html``: a flat page for ``--find-links``;
- ``<family>/simple/index.html`` and ``<family>/simple/<project>/index.html``: PEP 503 pages
  with the PEP 629 repository version;
- ``index.json`` beside each simple page: the PEP 691 JSON form with PEP 700 sizes (static
  hosting cannot negotiate the content type, so the JSON has a name of its own);
- ``index.html`` at the top: a landing page for people.

Every link carries ``#sha256=``; PEP 658 metadata is advertised under both PEP 714 names. Links
are relative to the page (files stored once, in ``dist/`` or ``dist/<family>/``) unless a file
was merged from another index by URL. Nothing here touches the file system; ``index_write``
writes the pages this module plans.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from urllib.parse import quote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelyard.errors import IndexError_
from wheelyard.index.confine import shown, unsafe_component
from wheelyard.report import human_size

API_VERSION = "1.1"
"""PEP 629 / PEP 691 version of the pages: 1.1 adds PEP 700 ``size`` and ``versions``."""

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
FLAT_PAGE = "index.html"
SIMPLE_DIR = "simple"
HTML_NAME = "index.html"
JSON_NAME = "index.json"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PROJECT = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
"""A normalised (PEP 503) project name: also one safe path component of the simple index."""


@dataclass(frozen=True, kw_only=True)
class IndexFile:
    """One distribution file as an index lists it."""

    filename: str
    project: str
    """Normalised (PEP 503) project name."""
    version: str
    location: str
    """Posix path relative to the dist root, or an absolute http(s) URL (merged by URL)."""
    sha256: str
    size: int
    requires_python: str | None = None
    metadata_sha256: str | None = None
    """sha256 of the PEP 658 ``<file>.metadata`` sidecar; ``None`` when there is none."""
    yanked: str | None = None
    """PEP 592: ``None`` when not yanked, else the reason (possibly empty)."""

    # Rendering pieces, computed once per file and reused by every page that lists it.
    is_remote: bool = field(init=False, repr=False, compare=False)
    _quoted_name: str = field(init=False, repr=False, compare=False)
    _escaped_name: str = field(init=False, repr=False, compare=False)
    _anchor_tail: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for label, digest in (("sha256", self.sha256), ("metadata sha256", self.metadata_sha256)):
            if digest is not None and not _SHA256.match(digest):
                raise IndexError_(
                    f"{self.filename}: {label} {digest!r} is not 64 lowercase hex digits",
                    hint="regenerate the build manifest or the index the file came from",
                )
        escaped = _esc(self.filename)
        # Everything of the file's <a> after the relative part of the href.
        attrs = [f'#sha256={self.sha256}"']
        if self.requires_python:
            attrs.append(f'data-requires-python="{_esc(self.requires_python)}"')
        if self.metadata_sha256 is not None:
            value = f"sha256={self.metadata_sha256}"
            attrs.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
        if self.yanked is not None:
            attrs.append(f'data-yanked="{_esc(self.yanked)}"')
        set_derived = partial(object.__setattr__, self)
        set_derived("is_remote", is_url(self.location))
        set_derived("_quoted_name", quote(self.filename, safe=""))
        set_derived("_escaped_name", escaped)
        set_derived("_anchor_tail", f"{' '.join(attrs)}>{escaped}</a>")


@dataclass(frozen=True, kw_only=True)
class Namespace:
    """The files one family's pages list: the family's own and the generic ones."""

    name: str
    files: tuple[IndexFile, ...]

    @cached_property
    def projects(self) -> Mapping[str, tuple[IndexFile, ...]]:
        """Files grouped by project; projects by name, files by version then filename."""
        grouped: dict[str, list[IndexFile]] = {}
        for item in self.files:
            grouped.setdefault(item.project, []).append(item)
        # Rank each distinct version once, so sorting compares integers, not Version objects.
        versions = sorted({f.version for f in self.files}, key=lambda v: (version_key(v), v))
        rank = {version: i for i, version in enumerate(versions)}
        return {
            name: tuple(sorted(files, key=lambda f: (rank[f.version], f.filename)))
            for name, files in sorted(grouped.items())
        }


@dataclass(frozen=True, kw_only=True)
class LandingInfo:
    """What the landing page says besides the file list."""

    requirement: str = "rocm[libraries,devel]"
    base_url: str | None = None
    """Public URL of the dist root; ``None`` writes paths relative to the dist directory."""
    public_index: str = "https://pypi.org/simple"


@dataclass(frozen=True, kw_only=True)
class Page:
    """A page to write: its path relative to the dist root and its bytes."""

    path: str
    data: bytes = field(repr=False)


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def parse_filename(filename: str) -> tuple[str, str]:
    """Normalised project name and version of a wheel or sdist filename."""
    hint = "remove the file or rename it as PEP 427 / PEP 625 require"
    problem = unsafe_component(filename)
    if problem is not None:
        raise IndexError_(
            f"'{shown(filename, limit=200)}': not a usable file name ({problem})", hint=hint
        )
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as error:
        raise IndexError_(
            f"{filename}: not a valid wheel or sdist filename ({shown(str(error))})", hint=hint
        ) from None
    project = canonicalize_name(name)
    if not _PROJECT.match(project):
        raise IndexError_(f"{filename}: {project!r} is not a valid project name", hint=hint)
    return project, str(version)


@lru_cache(maxsize=4096)
def version_key(version: str) -> tuple[int, Version | str]:
    """PEP 440 order; a version that does not parse sorts first, by its text."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


@lru_cache(maxsize=4096)
def _relative_dir(target_dir: str, page_dir: str) -> str:
    """Quoted path from ``page_dir`` to ``target_dir`` with a trailing slash, or ``""``."""
    target = [part for part in target_dir.split("/") if part]
    base = [part for part in page_dir.split("/") if part]
    common = 0
    while common < min(len(base), len(target)) and base[common] == target[common]:
        common += 1
    parts = [".."] * (len(base) - common) + target[common:]
    return quote("/".join(parts) + "/", safe="/") if parts else ""


def href_for(location: str, page_dir: str) -> str:
    """The URL of ``location`` relative to a page in ``page_dir`` (both relative to the root).

    Relative links are percent-quoted (a local version's ``+`` becomes ``%2B``, which S3 needs);
    absolute URLs from a merged index are kept as they were listed.
    """
    if is_url(location):
        return location
    directory, _, name = location.rpartition("/")
    return _relative_dir(directory, page_dir) + quote(name, safe="")


def _href(item: IndexFile, page_dir: str) -> str:
    """``href_for`` with the file's quoted name computed once; HTML-escaped."""
    if item.is_remote:
        return _esc(item.location)
    return _relative_dir(item.location.rpartition("/")[0], page_dir) + item._quoted_name


def _anchor(item: IndexFile, page_dir: str) -> str:
    return f'<a href="{_href(item, page_dir)}{item._anchor_tail}<br>'


def _html_page(title: str, body: Iterable[str], *, repository_meta: bool = True) -> bytes:
    head = ['<meta charset="utf-8">']
    if repository_meta:
        head.append(f'<meta name="pypi:repository-version" content="{API_VERSION}">')
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        *head,
        f"<title>{_esc(title)}</title>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
        *body,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _json_page(document: object) -> bytes:
    # Keys are inserted in a fixed order, so the output is deterministic without sort_keys.
    return (json.dumps(document, separators=(",", ":")) + "\n").encode("utf-8")


def flat_page_path(namespace: str) -> str:
    return f"{namespace}/{FLAT_PAGE}"


def simple_dir(namespace: str, project: str | None = None) -> str:
    root = f"{namespace}/{SIMPLE_DIR}"
    return root if project is None else f"{root}/{project}"


def render_flat_page(namespace: Namespace) -> bytes:
    """The ``--find-links`` page: every file of the namespace on one page."""
    page_dir = namespace.name
    files = sorted(namespace.files, key=lambda item: item.filename)
    return _html_page(f"Links for {namespace.name}", (_anchor(item, page_dir) for item in files))


def render_simple_root(namespace: Namespace) -> bytes:
    """PEP 503 root: one link per normalised project name."""
    links = (f'<a href="{_esc(quote(name))}/">{_esc(name)}</a><br>' for name in namespace.projects)
    return _html_page(f"Simple index for {namespace.name}", links)


def render_simple_root_json(namespace: Namespace) -> bytes:
    """PEP 691 root: the project names."""
    projects = [{"name": name} for name in namespace.projects]
    return _json_page({"meta": {"api-version": API_VERSION}, "projects": projects})


def render_project_page(namespace: Namespace, project: str, files: Sequence[IndexFile]) -> bytes:
    """PEP 503 project page with hashes, requires-python and PEP 658/714 metadata."""
    page_dir = simple_dir(namespace.name, project)
    return _html_page(f"Links for {project}", (_anchor(item, page_dir) for item in files))


def render_project_json(namespace: Namespace, project: str, files: Sequence[IndexFile]) -> bytes:
    """PEP 691 project page with PEP 700 ``size`` and ``versions``; no upload times."""
    page_dir = simple_dir(namespace.name, project)
    entries: list[dict[str, object]] = []
    for item in files:
        entry: dict[str, object] = {
            "filename": item.filename,
            "url": item.location if item.is_remote else _href(item, page_dir),
            "hashes": {"sha256": item.sha256},
            "size": item.size,
            "yanked": False if item.yanked is None else (item.yanked or True),
        }
        if item.requires_python:
            entry["requires-python"] = item.requires_python
        if item.metadata_sha256 is not None:
            entry["core-metadata"] = {"sha256": item.metadata_sha256}
            entry["dist-info-metadata"] = {"sha256": item.metadata_sha256}
        entries.append(entry)
    versions = list(dict.fromkeys(item.version for item in files))  # files are in version order
    document = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": versions,
        "files": entries,
    }
    return _json_page(document)


def install_commands(namespace: str, info: LandingInfo) -> list[tuple[str, str]]:
    """The install lines for one family: (label, command)."""
    base = info.base_url.rstrip("/") if info.base_url else "."
    flat = f"{base}/{flat_page_path(namespace)}"
    simple = f"{base}/{simple_dir(namespace)}/"
    req = f'"{info.requirement}"'
    return [
        ("pip, flat page", f"pip install {req} --pre --find-links={flat}"),
        ("pip, simple index", f"pip install {req} --pre --index-url {simple}"),
        (
            "uv, this index first",
            f"uv pip install {req} --prerelease=allow --index {simple} "
            f"--default-index {info.public_index}",
        ),
        (
            "uv, flat page only",
            f"uv pip install {req} --prerelease=allow --no-index --find-links {flat}",
        ),
    ]


def render_landing_page(namespaces: Sequence[Namespace], info: LandingInfo) -> bytes:
    """A page for people: families, install commands, and every file with its size."""
    body: list[str] = ["<ul>"]
    for ns in namespaces:
        name = _esc(ns.name)
        body.append(f'<li><a href="#{name}">{name}</a>: {len(ns.files)} files</li>')
    body.append("</ul>")
    if info.base_url is None:
        body.append(
            "<p>Commands below use paths relative to this directory; replace <code>.</code> with "
            "the URL this directory is served from.</p>"
        )
    body.append(
        "<p>With uv, keep this index in <code>--index</code> (or use <code>--no-index</code> with "
        "the flat page): <code>--index-url</code> and <code>--find-links</code> would let a "
        "same-named package on the public index take over (dependency confusion).</p>"
    )
    for ns in namespaces:
        name = _esc(ns.name)
        body.append(f'<h2 id="{name}">{name}</h2>')
        body.append(
            f'<p><a href="{_esc(href_for(flat_page_path(ns.name), ""))}">flat page</a> · '
            f'<a href="{_esc(href_for(simple_dir(ns.name), ""))}/">simple index</a></p>'
        )
        body.append("<dl>")
        for label, command in install_commands(ns.name, info):
            body.append(f"<dt>{_esc(label)}</dt><dd><code>{_esc(command)}</code></dd>")
        body.append("</dl>")
        body.append("<table>")
        body.append("<tr><th>package</th><th>version</th><th>file</th><th>size</th></tr>")
        for project, files in ns.projects.items():
            cell = f"<tr><td>{_esc(project)}</td><td>"
            for item in files:
                body.append(
                    f"{cell}{_esc(item.version)}</td>"
                    f'<td><a href="{_href(item, "")}">{item._escaped_name}</a></td>'
                    f"<td>{human_size(item.size)}</td></tr>"
                )
        body.append("</table>")
    return _html_page("Python packages", body, repository_meta=False)


def plan_pages(namespaces: Sequence[Namespace], *, landing: LandingInfo | None) -> list[Page]:
    """Every page of the index, in write order: simple pages, landing page, flat pages last.

    Installers start from the flat page or the simple root, so those are written after the
    pages and files they link to.
    """
    ordered = sorted(namespaces, key=lambda ns: ns.name)
    pages: list[Page] = []
    for ns in ordered:
        projects = ns.projects
        for project, files in projects.items():
            page_dir = simple_dir(ns.name, project)
            pages.append(
                Page(path=f"{page_dir}/{JSON_NAME}", data=render_project_json(ns, project, files))
            )
            pages.append(
                Page(path=f"{page_dir}/{HTML_NAME}", data=render_project_page(ns, project, files))
            )
    for ns in ordered:
        pages.append(
            Page(path=f"{simple_dir(ns.name)}/{JSON_NAME}", data=render_simple_root_json(ns))
        )
        pages.append(Page(path=f"{simple_dir(ns.name)}/{HTML_NAME}", data=render_simple_root(ns)))
    if landing is not None:
        pages.append(Page(path=HTML_NAME, data=render_landing_page(ordered, landing)))
    pages.extend(Page(path=flat_page_path(ns.name), data=render_flat_page(ns)) for ns in ordered)
    return pages


def namespaces_from(files_by_namespace: Mapping[str, Iterable[IndexFile]]) -> list[Namespace]:
    """Namespaces sorted by name, their files sorted by filename."""
    return [
        Namespace(name=name, files=tuple(sorted(files, key=lambda item: item.filename)))
        for name, files in sorted(files_by_namespace.items())
    ]
