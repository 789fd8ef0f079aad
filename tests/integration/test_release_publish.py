"""publish to a real pypiserver on loopback: dry run, upload, skip, conflict, dev refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import run_wheelyard
from tests.integration._release import build_sample, copy_dist, wheel_of

pytestmark = pytest.mark.integration
PYPI_SERVER = Path(sys.executable).parent / "pypi-server"


@dataclass(frozen=True)
class Server:
    url: str
    packages: Path
    log: Path

    def posts(self) -> int:
        return self.log.read_text(errors="replace").count("POST")

    def stored(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.packages.iterdir())}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    packages, log = tmp_path / "packages", tmp_path / "pypiserver.log"
    packages.mkdir()
    port = _free_port()
    process = subprocess.Popen(
        [PYPI_SERVER, "run", "-v", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
         "--hash-algo", "sha256", "--disable-fallback", "--log-file", str(log), str(packages)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}simple/", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, "pypi-server exited"
                assert time.monotonic() < deadline, "pypi-server did not start"
                time.sleep(0.1)
        yield Server(url=url, packages=packages, log=log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _publish(dist: Path, server: Server, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TWINE_USERNAME": "release-test",
        "TWINE_PASSWORD": "pw-never-printed",
        "COLUMNS": "250",
        "NO_PROXY": "127.0.0.1",
    }
    result = run_wheelyard(
        "publish", "--dist", dist, "--repository-url", server.url, *extra, env=env, timeout=120
    )
    assert "pw-never-printed" not in result.stdout + result.stderr
    return result


def test_dry_run_upload_skip_and_conflict(tmp_path: Path, server: Server) -> None:
    dist = build_sample(tmp_path / "build")
    names = sorted(p.name for p in dist.rglob("*.whl"))

    dry = _publish(dist, server)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: 4 would be uploaded" in dry.stdout
    assert server.posts() == 0
    assert server.stored() == {}

    first = _publish(dist, server, "--execute")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published: 4 uploaded, 0 already there" in first.stdout
    stored = server.stored()
    assert sorted(stored) == names
    for name, data in stored.items():
        assert wheel_of(dist, name.split("-", 1)[0] + "-").read_bytes() == data
    posts = server.posts()
    assert posts >= 4

    second = _publish(dist, server, "--execute")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "published: 0 uploaded, 4 already there" in second.stdout
    assert server.posts() == posts

    changed = copy_dist(dist, tmp_path / "changed")
    (changed / "rocm_sdk_core-7.10.0rc1-py3-none-manylinux_2_28_x86_64.whl").write_bytes(
        (dist / "rocm_sdk_core-7.10.0rc1-py3-none-manylinux_2_28_x86_64.whl").read_bytes() + b"\0"
    )
    extra = build_sample(tmp_path / "other", "7.10.0rc2")  # new names, must not be sent either
    for wheel in extra.rglob("*.whl"):
        (changed / wheel.relative_to(extra)).write_bytes(wheel.read_bytes())
    conflict = _publish(changed, server, "--execute")
    assert conflict.returncode == 1
    assert "rocm_sdk_core-7.10.0rc1-py3-none-manylinux_2_28_x86_64.whl: ours" in conflict.stderr
    assert "nothing was uploaded" in conflict.stderr
    assert server.posts() == posts
    assert server.stored() == stored


def test_dev_versions_are_refused(tmp_path: Path, server: Server) -> None:
    dist = build_sample(tmp_path / "build", "7.10.0.dev0+89553ce")
    result = _publish(dist, server, "--execute")
    assert result.returncode == 1
    assert "is a dev or local version" in result.stderr
    assert server.posts() == 0
    assert server.stored() == {}
