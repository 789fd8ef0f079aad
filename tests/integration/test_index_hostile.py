"""`wheelyard index` against hostile input, through the CLI: one clean error and nothing written.

A loopback HTTP server (127.0.0.1, started and stopped here) serves an honest index next to
hostile pages: oversized and trickling responses, `javascript:`/`data:` links, a redirect to
`file:`. Family names smuggled through the URL (`%2e%2e`, `%2F`), unknown families, non-http
URLs and a dist whose entries stand where pages go are refused too. Every case checks: exit != 0,
exactly one `error:` line naming the URL or argument, no traceback and no control characters on
the terminal, the whole temporary tree (`--dist` and all around it) unchanged, and canary files
outside `--dist` unchanged in content, mode, owner and mtime.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run_wheelyard
from tests.integration._synthetic_dist import make_synthetic_dist

pytestmark = pytest.mark.integration

FAMILY = "gfx94X-dcgpu"
TIMEOUT = 2.0
MAX_BYTES = 100_000
WHEEL = "rocm-1.0-py3-none-any.whl"
SHA = "0" * 64


@dataclass
class Hostile:
    """What the server serves besides the honest index under /good/, and what it was asked."""

    good: Path
    url: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


def _page(*links: str) -> bytes:
    anchors = "".join(f'<a href="{href}">{WHEEL}</a><br>' for href in links)
    return f"<!DOCTYPE html><html><body>{anchors}</body></html>".encode()


PAGES = {
    f"/js/{FAMILY}/index.html": _page(f"javascript:alert(1)//{WHEEL}#sha256={SHA}"),
    f"/data/{FAMILY}/index.html": _page(f"data:application/zip;base64,UEsFBg==#sha256={SHA}"),
}


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        named = {key.replace("_", "-"): value for key, value in headers.items()}
        for key, value in {"Content-Length": str(len(body)), **named}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, chunk: bytes, pause: float, limit: int) -> None:
        """Headers, then ``chunk`` every ``pause`` s until the client leaves (or ``limit``)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Connection", "close")
        self.end_headers()
        state: Hostile = self.server.state
        sent = 0
        try:
            while sent < limit and not state.stop.is_set():
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                time.sleep(pause)
        except OSError:
            pass  # the client gave up: what it should do

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        state: Hostile = self.server.state
        state.requests.append(self.path)
        path = self.path.split("?")[0]
        if path in PAGES:
            self._send(200, PAGES[path], Content_Type="text/html")
        elif path.startswith("/redirect/"):
            self._send(302, Location=f"file://{state.good}/{FAMILY}/index.html")
        elif path.startswith("/declared-big/"):
            self._send(200, b"<html>", Content_Type="text/html", Content_Length="1000000000")
        elif path.startswith("/endless/"):
            self._stream(b"<a>" * 20_000, 0.0, 4 * 1024 * 1024)
        elif path.startswith("/trickle/"):
            self._stream(b"<", 0.1, 1000)
        elif path.startswith("/good/"):
            self._serve_file(state.good / path.removeprefix("/good/"))
        elif path.startswith("/evil/"):
            # The honest family's pages under whatever family the URL names: without the
            # guard, merging from here writes that family's pages wherever its name points.
            rest = path.split("/", 3)[3:]
            self._serve_file(state.good / FAMILY / "/".join(rest))
        else:
            self._send(404)

    def _serve_file(self, target: Path) -> None:
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            self._send(404)
            return
        kind = "application/vnd.pypi.simple.v1+json" if target.suffix == ".json" else "text/html"
        self._send(200, target.read_bytes(), Content_Type=kind)


@pytest.fixture(scope="module")
def good_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An honest, indexed older release: the merge source the hostile cases are compared to."""
    old = make_synthetic_dist(tmp_path_factory.mktemp("good"), version="7.9.0")
    result = run_wheelyard("index", "--dist", old)
    assert result.returncode == 0, result.stderr
    return old


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh (not yet indexed) build output: dist/ and build-manifest.json."""
    out = tmp_path_factory.mktemp("template") / "area"
    make_synthetic_dist(out)
    return out


@pytest.fixture(scope="module")
def server(good_index: Path) -> Iterator[Hostile]:
    state = Hostile(good=good_index)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@dataclass
class Area:
    root: Path
    dist: Path
    canaries: tuple[Path, ...]


@pytest.fixture
def area(tmp_path: Path, template: Path) -> Area:
    """tmp/area/dist to index; canaries where an escape would write, and in tmp/outside."""
    shutil.copytree(template, tmp_path / "area", symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    canaries = (
        tmp_path / "area" / "index.html",  # dist/../index.html: where family ".." writes
        tmp_path / "index.html",  # dist/../../index.html
        outside / "index.html",
    )
    for number, canary in enumerate(canaries):
        canary.write_text(f"canary {number}\n")
        canary.chmod(0o640)
        os.utime(canary, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return Area(root=tmp_path, dist=tmp_path / "area" / "dist", canaries=canaries)


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root``: kind, mode, owner, mtime and content or link target."""
    entries: dict[str, tuple[object, ...]] = {}
    for path in sorted([root, *root.rglob("*")]):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content: object = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:
            content = None
        mtime = None if stat.S_ISLNK(info.st_mode) else info.st_mtime_ns
        entries[str(path.relative_to(root))] = (
            info.st_mode,
            info.st_uid,
            info.st_gid,
            mtime,
            content,
        )
    return entries


def canary_state(path: Path) -> tuple[object, ...]:
    info = path.lstat()
    return (
        path.read_bytes(),
        stat.S_IMODE(info.st_mode),
        info.st_uid,
        info.st_gid,
        info.st_mtime_ns,
    )


def refused(area: Area, *args: str | Path, names: str, says: str) -> str:
    """Run `wheelyard index` on the area; check it failed cleanly and changed nothing."""
    before = tree(area.root)
    canaries = [canary_state(path) for path in area.canaries]
    started = time.monotonic()
    result = run_wheelyard(
        "index",
        "--dist",
        area.dist,
        "--fetch-timeout",
        str(TIMEOUT),
        "--fetch-max-bytes",
        str(MAX_BYTES),
        *args,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert names in errors[0], result.stderr
    assert says in result.stderr, result.stderr
    assert "Traceback" not in output
    assert all(ch.isprintable() or ch == "\n" for ch in output), repr(output)
    assert tree(area.root) == before
    assert [canary_state(path) for path in area.canaries] == canaries
    assert elapsed < TIMEOUT + 20
    return result.stderr


def test_an_honest_merge_from_the_same_server_works(area: Area, server: Hostile) -> None:
    """The control: the server and the command work, so each refusal below is the guard's."""
    url = f"{server.url}/evil/{FAMILY}/simple/"
    result = run_wheelyard("index", "--dist", area.dist, "--merge-from", url, timeout=60)
    assert result.returncode == 0, result.stderr
    document = (area.dist / FAMILY / "simple" / "rocm" / "index.json").read_text()
    assert f"{server.url}/evil/{FAMILY}/rocm-7.9.0-py3-none-any.whl" in document
    assert [canary_state(path)[0] for path in area.canaries] == [
        f"canary {n}\n".encode() for n in range(3)
    ]


ENCODED = {
    "dotdot": "/evil/%2e%2e/simple/",
    "dotdot-slash": "/evil/%2E%2E%2F%2e%2e/simple/",
    "slash": f"/evil/{FAMILY}%2F..%2F..%2F..%2Fevil/simple/",
    "control": "/evil/gfx%1b%5b2J/simple/",
}


@pytest.mark.parametrize("path", ENCODED.values(), ids=ENCODED.keys())
def test_encoded_path_steps_in_the_family_are_refused_before_fetching(
    area: Area, server: Hostile, path: str
) -> None:
    url = server.url + path
    asked = len(server.requests)
    refused(area, "--merge-from", url, names=url, says="not a single safe path component")
    assert server.requests[asked:] == []


def test_an_explicit_family_must_be_safe_too(area: Area, server: Hostile) -> None:
    url = f"{server.url}/evil/{FAMILY}/simple/"
    refused(area, "--merge-from", f"..={url}", names=url, says="not a single safe path component")


@pytest.mark.parametrize("family", ["gfx999", "generic"])
def test_a_family_outside_the_profile_is_refused_with_the_list(
    area: Area, server: Hostile, family: str
) -> None:
    url = f"{server.url}/evil/{family}/simple/"
    stderr = refused(area, "--merge-from", url, names=url, says=f"'{family}'")
    assert "valid families: gfx101X-dgpu" in stderr
    assert "wheelyard families" in stderr


@pytest.mark.parametrize(
    "source",
    ["file://{outside}/", f"{FAMILY}=file://{{outside}}/", "data:,x"],
    ids=["file", "family-file", "data"],
)
def test_non_http_merge_sources_are_never_read(area: Area, source: str) -> None:
    argument = source.format(outside=area.canaries[2].parent)
    scheme = argument.partition("=")[2] if argument.startswith(FAMILY) else argument
    refused(
        area,
        "--merge-from",
        argument,
        names=scheme.split(":")[0] + ":",
        says="only http:// and https:// URLs are fetched",
    )


@pytest.mark.parametrize("kind", ["js", "data"])
def test_links_with_other_schemes_are_refused(area: Area, server: Hostile, kind: str) -> None:
    url = f"{server.url}/{kind}/{FAMILY}/index.html"
    refused(area, "--merge-from", url, names=url, says="only http(s) links are merged")


def test_a_redirect_to_file_is_not_followed(area: Area, server: Hostile) -> None:
    url = f"{server.url}/redirect/{FAMILY}/index.html"
    refused(area, "--merge-from", url, names=url, says="redirected to file://")


@pytest.mark.parametrize("kind", ["declared-big", "endless"])
def test_an_oversized_page_is_abandoned(area: Area, server: Hostile, kind: str) -> None:
    url = f"{server.url}/{kind}/{FAMILY}/index.html"
    refused(area, "--merge-from", url, names=url, says=f"over the {MAX_BYTES} byte limit")


def test_a_trickling_server_is_abandoned_at_the_deadline(area: Area, server: Hostile) -> None:
    url = f"{server.url}/trickle/{FAMILY}/index.html"
    started = time.monotonic()
    refused(area, "--merge-from", url, names=url, says=f"no complete response within {TIMEOUT:g} s")
    assert time.monotonic() - started < TIMEOUT + 8


# --- a dist whose entries stand where the index writes -------------------------------------


def _dir_at(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "keep.txt").write_text("mine\n")


def _file_at(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a directory\n")


def _link_out(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.parents[4] / "outside", target_is_directory=True)


LAYOUTS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "landing-page-is-a-dir": ("index.html", _dir_at, "is a directory where the index needs a file"),
    "simple-is-a-file": (f"{FAMILY}/simple", _file_at, "is a file where the index needs a dir"),
    "sidecar-is-a-dir": (
        "rocm_sdk_core-7.10.0.dev0-py3-none-any.whl.metadata",
        _dir_at,
        "is a dir",
    ),
    "project-links-out": (f"{FAMILY}/simple/rocm", _link_out, "outside --dist"),
    "stale-project-links-out": (f"{FAMILY}/simple/gone", _link_out, "outside --dist"),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_an_entry_where_a_page_goes_is_a_clean_error(
    area: Area, layout: tuple[str, Callable[[Path], None], str]
) -> None:
    relative, make, says = layout
    make(area.dist / relative)
    stderr = refused(area, names=str(area.dist), says=says)
    assert relative in stderr


@pytest.mark.parametrize(
    ("directory", "says"),
    [("gfx999", "not in the profile's families"), ("gfx\x1b[2J", "not a single safe path")],
    ids=["unknown", "control-characters"],
)
def test_a_dist_directory_must_be_a_profile_family(area: Area, directory: str, says: str) -> None:
    wheel = next((area.dist / FAMILY).glob("rocm-*.whl"))
    (area.dist / directory).mkdir()
    shutil.copy2(wheel, area.dist / directory / wheel.name)
    refused(area, names=f"--dist {area.dist}", says=says)
