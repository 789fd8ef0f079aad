"""Real pip and uv install from the indexes `wheelyard index` writes, from disk and over HTTP.

Everything is offline: the HTTP server is a ThreadingHTTPServer on 127.0.0.1 started and stopped
by the tests; pip and uv are isolated from the machine's configuration. Each test runs on two
dists: the synthetic one (pure-Python wheels, tests/integration/_synthetic_dist.py) and a real
`wheelyard build` of the sample artifacts. Both are indexed together with an older release
(7.9.0) merged from another indexed directory, so every page lists two versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from packaging.version import Version
from pypi_simple import IndexPage, ProjectPage
from tests.conftest import run_wheelyard
from tests.integration._synthetic_dist import make_synthetic_dist, namespace_hashes
from tests.integration._venv import isolated_env

pytestmark = pytest.mark.integration

FAMILIES = ("gfx120X-all", "gfx94X-dcgpu")
OLD_VERSION = "7.9.0"
UV = Path(sys.executable).parent / "uv"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_CHECK = """
import importlib.metadata as md, importlib.util, json, pathlib
spec = importlib.util.find_spec("rocm_sdk")
info = json.loads(pathlib.Path(spec.origin).with_name("_dist_info.json").read_text())
names = sorted((d.metadata["Name"].lower(), d.version) for d in md.distributions())
print(json.dumps({"family": info["family"], "dists": names}))
"""


@dataclass(frozen=True)
class Indexed:
    dist: Path
    version: str

    def expected(self, family: str, *extras: str) -> list[list[str]]:
        names = ["rocm", "rocm-sdk-core"]
        names += [f"rocm-sdk-{extra}-{family.lower()}" for extra in extras]
        return sorted([name, self.version] for name in names)

    def files(self, family: str) -> dict[str, tuple[str, int]]:
        return namespace_hashes(self.dist, family)


@dataclass
class Server:
    root: Path
    negotiate: bool
    url: str = ""
    log: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(method, path, status, content type served)."""

    def paths(self, method: str = "GET") -> list[str]:
        return [path for m, path, status, _ in self.log if m == method and status == 200]


class _Handler(SimpleHTTPRequestHandler):
    server: Any

    def _negotiated(self) -> bool:
        state: Server = self.server.state
        accept = self.headers.get("Accept", "")
        if not (state.negotiate and self.path.endswith("/") and JSON_TYPE in accept):
            return False
        return (Path(self.translate_path(self.path)) / "index.json").is_file()

    def send_head(self) -> Any:
        self._json = self._negotiated()
        if self._json:
            self.path += "index.json"
        return super().send_head()

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        if getattr(self, "_json", False):
            return JSON_TYPE
        return super().guess_type(path)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        served = JSON_TYPE if getattr(self, "_json", False) else ""
        path = unquote(self.path.removesuffix("index.json") if served else self.path)
        self.server.state.log.append((self.command, path, int(code), served))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(root: Path, *, negotiate: bool = False) -> Server:
        state = Server(root=root, negotiate=negotiate)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        httpd.state = state  # type: ignore[attr-defined]
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        servers.append((httpd, thread))
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return state

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module", params=["synthetic", "built"])
def indexed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    root = tmp_path_factory.mktemp(f"index-{request.param}")
    old = make_synthetic_dist(root / "old", version=OLD_VERSION, families=FAMILIES)
    result = run_wheelyard("index", "--dist", old)
    assert result.returncode == 0, result.stderr
    if request.param == "synthetic":
        dist = make_synthetic_dist(root / "new", families=FAMILIES)
    else:
        build: Path = request.getfixturevalue("sample_build")
        shutil.copytree(build, root / "new")
        dist = root / "new" / "dist"
    result = run_wheelyard("index", "--dist", dist, "--merge-from", old)
    assert result.returncode == 0, result.stderr
    version = json.loads((dist.parent / "build-manifest.json").read_text())["version"]
    return Indexed(dist=dist, version=version)


def _env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def _run(cmd: Sequence[str | Path], env: Mapping[str, str]) -> str:
    result = subprocess.run(
        [str(part) for part in cmd],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _install(
    installer: str, venv: Path, env: Mapping[str, str], args: Sequence[str | Path]
) -> dict[str, Any]:
    """Install into a fresh venv and report what it holds: family of rocm_sdk and dists."""
    if installer == "pip":
        _run([sys.executable, "-m", "venv", "--without-pip", venv], env)
        python = venv / "bin" / "python"
        pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python, "install"]
        pip.append("--no-cache-dir")
        _run([*pip, "--timeout", "20", "--retries", "0", "--pre", *args], env)
    else:
        _run([UV, "venv", "--quiet", "--python", sys.executable, venv], env)
        python = venv / "bin" / "python"
        _run([UV, "pip", "install", "--python", python, "--prerelease=allow", *args], env)
    report: dict[str, Any] = json.loads(_run([python, "-c", _CHECK], env))
    return report


@pytest.mark.timeout(600)
@pytest.mark.parametrize("transport", ["path", "http"])
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_flat_page_installs_each_family_with_no_index(
    indexed: Indexed, installer: str, transport: str, tmp_path: Path, serve: Any
) -> None:
    server: Server = serve(indexed.dist)
    for family in FAMILIES:
        if transport == "path":
            page = str(indexed.dist / family / "index.html")
        else:
            page = f"{server.url}/{family}/index.html"
        args = ["--no-index", "--find-links", page, "rocm[libraries,devel]"]
        report = _install(installer, tmp_path / f"venv-{family}", _env(tmp_path), args)
        assert report["family"] == family
        assert report["dists"] == indexed.expected(family, "devel", "libraries")
    wheels = [path for path in server.paths() if path.endswith(".whl")]
    if transport == "http":
        assert len(wheels) == 2 * 4
        for family in FAMILIES:
            own = [p for p in wheels if p.startswith(f"/{family}/")]
            assert len(own) == 3, wheels
        assert not [p for p in wheels if OLD_VERSION in p]
    else:
        assert server.log == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("negotiate", [False, True], ids=["static", "json"])
def test_pip_simple_index_resolves_from_metadata_files(
    indexed: Indexed, negotiate: bool, tmp_path: Path, serve: Any
) -> None:
    family = "gfx120X-all"
    server: Server = serve(indexed.dist, negotiate=negotiate)
    args = ["--index-url", f"{server.url}/{family}/simple/", "rocm[libraries]"]
    report = _install("pip", tmp_path / "venv", _env(tmp_path), args)
    assert report["family"] == family
    assert report["dists"] == indexed.expected(family, "libraries")

    fetched = server.paths()
    wheels = [p for p in fetched if p.endswith(".whl")]
    metadata = [p for p in fetched if p.endswith(".whl.metadata")]
    installed = [
        name for name in indexed.files(family) if "devel" not in name and indexed.version in name
    ]
    assert sorted(p.rsplit("/", 1)[-1] for p in wheels) == sorted(installed)
    for name in installed:
        (wheel,) = [p for p in wheels if p.endswith(f"/{name}")]
        # resolution read the sidecar; the wheel itself was only downloaded to install it
        assert fetched.index(f"{wheel}.metadata") < fetched.index(wheel)
    assert not [p for p in fetched if "devel" in p and p.endswith(".whl")]
    assert not [p for p in wheels + metadata if OLD_VERSION in p]
    pages = [(path, served) for m, path, _s, served in server.log if path.endswith("/")]
    assert pages
    assert all(served == (JSON_TYPE if negotiate else "") for _path, served in pages)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("negotiate", [False, True], ids=["static", "json"])
def test_uv_installs_with_our_index_before_the_default(
    indexed: Indexed, negotiate: bool, tmp_path: Path, serve: Any
) -> None:
    server: Server = serve(indexed.dist, negotiate=negotiate)
    for family in FAMILIES:
        args = [
            "--index",
            f"{server.url}/{family}/simple/",
            "--default-index",
            f"{server.url}/public/simple/",
            "rocm[libraries,devel]",
        ]
        report = _install("uv", tmp_path / f"venv-{family}", _env(tmp_path), args)
        assert report["family"] == family
        assert report["dists"] == indexed.expected(family, "devel", "libraries")
    fetched = server.paths()
    # every project came from our index: the default (public) index was never asked
    assert not [p for p in fetched if p.startswith("/public/")]
    assert not [m for m, p, _s, _t in server.log if p.startswith("/public/")]
    assert [p for p in fetched if p.endswith(".whl.metadata")]
    assert not [p for p in fetched if OLD_VERSION in p and p.endswith(".whl")]


@pytest.mark.timeout(300)
def test_uv_pip_compile_records_the_manifest_hashes(
    indexed: Indexed, tmp_path: Path, serve: Any
) -> None:
    server: Server = serve(indexed.dist)
    requirements = tmp_path / "requirements.in"
    requirements.write_text("rocm[libraries,devel]\n")
    for family in FAMILIES:
        output = _run(
            [
                UV,
                "pip",
                "compile",
                requirements,
                "--generate-hashes",
                "--prerelease=allow",
                "--no-header",
                "--no-annotate",
                "--python",
                sys.executable,
                "--default-index",
                f"{server.url}/{family}/simple/",
            ],
            _env(tmp_path),
        )
        pinned: dict[str, set[str]] = {}
        current = ""
        for line in output.splitlines():
            if "==" in line and not line.startswith(" "):
                current = line.split("==")[0].split("[")[0].strip()
                pinned[current] = set()
            elif "--hash=sha256:" in line:
                pinned[current].add(line.split("--hash=sha256:")[1].strip(" \\"))
        expected: dict[str, set[str]] = {}
        for name, (sha256, _size) in indexed.files(family).items():
            if indexed.version in name:
                project = name.split("-")[0].replace("_", "-")
                expected.setdefault(project, set()).add(sha256)
        assert pinned == expected


def test_pypi_simple_parses_every_page_with_the_manifest_hashes(indexed: Indexed) -> None:
    old = indexed.dist.parent.parent / "old" / "dist"
    for family in FAMILIES:
        expected = {**indexed.files(family), **namespace_hashes(old, family)}
        ns = indexed.dist / family
        flat = ProjectPage.from_html("rocm", (ns / "index.html").read_bytes(), ns.as_uri() + "/")
        pages = [flat]
        root_html = IndexPage.from_html((ns / "simple" / "index.html").read_bytes())
        root_json = IndexPage.from_json_data(json.loads((ns / "simple" / "index.json").read_text()))
        assert root_html.projects == root_json.projects
        assert root_html.repository_version == "1.1"
        assert len(root_html.projects) == 4
        for project in root_html.projects:
            directory = ns / "simple" / project
            base = directory.as_uri() + "/"
            html_page = ProjectPage.from_html(
                project, (directory / "index.html").read_bytes(), base
            )
            json_page = ProjectPage.from_json_data(
                json.loads((directory / "index.json").read_text()), base
            )
            assert html_page.repository_version == json_page.repository_version == "1.1"
            assert [p.filename for p in html_page.packages] == [
                p.filename for p in json_page.packages
            ]
            assert json_page.versions is not None
            listed_versions = {str(p.version) for p in json_page.packages}
            assert json_page.versions == sorted(listed_versions, key=Version)
            for package in json_page.packages:
                assert package.size == expected[package.filename][1]
            pages += [html_page, json_page]
        listed: set[str] = set()
        for page in pages:
            for package in page.packages:
                listed.add(package.filename)
                assert package.digests == {"sha256": expected[package.filename][0]}
                assert package.requires_python == ">=3.9"
                target = Path(unquote(package.url.removeprefix("file://")))
                assert target.is_file()
                sidecar = Path(str(target) + ".metadata").read_bytes()
                assert package.has_metadata
                assert package.metadata_digests == {"sha256": hashlib.sha256(sidecar).hexdigest()}
        assert listed == set(expected)
        assert len(flat.packages) == len(expected)


@pytest.mark.timeout(300)
def test_merge_from_url_keeps_remote_links_that_pip_follows(tmp_path: Path, serve: Any) -> None:
    old = make_synthetic_dist(tmp_path / "old", version=OLD_VERSION)
    assert run_wheelyard("index", "--dist", old).returncode == 0
    server: Server = serve(old)
    new = make_synthetic_dist(tmp_path / "new")
    result = run_wheelyard(
        "index",
        "--dist",
        new,
        "--merge-from",
        f"{server.url}/gfx120X-all/simple/",
        "--merge-from",
        f"{server.url}/gfx94X-dcgpu/index.html",
    )
    assert result.returncode == 0, result.stderr
    assert not list(new.rglob(f"*{OLD_VERSION}*"))
    env = _env(tmp_path)
    page = new / "gfx94X-dcgpu" / "index.html"
    args: list[str | Path] = ["--no-index", "--find-links", page, f"rocm[libraries]=={OLD_VERSION}"]
    report = _install("pip", tmp_path / "venv", env, args)
    assert report["family"] == "gfx94X-dcgpu"
    assert [v for _name, v in report["dists"]] == [OLD_VERSION] * 3
    remote = [p for p in server.paths() if p.endswith(".whl")]
    assert sorted(remote) == sorted(
        [
            f"/rocm_sdk_core-{OLD_VERSION}-py3-none-any.whl",
            f"/gfx94X-dcgpu/rocm-{OLD_VERSION}-py3-none-any.whl",
            f"/gfx94X-dcgpu/rocm_sdk_libraries_gfx94x_dcgpu-{OLD_VERSION}-py3-none-any.whl",
        ]
    )

    respin = make_synthetic_dist(tmp_path / "respin", version=OLD_VERSION, salt="changed")
    result = run_wheelyard(
        "index", "--dist", respin, "--merge-from", f"{server.url}/gfx120X-all/simple/"
    )
    assert result.returncode == 1
    assert "would change their content" in result.stderr
    assert "Traceback" not in result.stderr
