"""``wheelyard test``: the sample's wheels pass with pip and uv; a broken or hanging set fails."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAMILY = "gfx94X-dcgpu"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _wheelyard(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "wheelyard", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample family built and indexed once; returns the build directory."""
    out = tmp_path_factory.mktemp("build") / "out"
    _ok(_wheelyard("build", FAMILY, "--out", out))
    _ok(_wheelyard("index", "--dist", out / "dist"))
    return out


def _version(build: Path) -> str:
    wheel = next((build / "dist").glob("rocm_sdk_core-*.whl"))
    return wheel.name.split("-")[1]


def _test(
    tmp: Path, dist: Path, version: str, *extra: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return _wheelyard(
        "test", FAMILY, "--find-links", dist, "--version", version,
        "--venv", tmp / "venv", "--junitxml", tmp / "results.xml", *extra, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_sample_wheels_pass(sample: Path, tmp_path: Path, installer: str) -> None:
    result = _test(tmp_path, sample / "dist", _version(sample), "--installer", installer)
    _ok(result)
    assert "rocm-sdk test passed" in result.stdout
    assert "<testsuite" in (tmp_path / "results.xml").read_text()


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _drop_member(wheel: Path, dropped: str) -> None:
    """Rewrite ``wheel`` without ``dropped``, its RECORD fixed to match."""
    with zipfile.ZipFile(wheel) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    assert dropped in members, sorted(members)
    del members[dropped]
    record = next(name for name in members if name.endswith(".dist-info/RECORD"))
    lines = [_record_line(n, d) for n, d in members.items() if n != record]
    members[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)


def test_broken_library_fails_naming_it(sample: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(sample / "dist", dist)
    core = next(dist.glob("rocm_sdk_core-*.whl"))
    missing = "librocm_sysdeps_z.so.1"
    _drop_member(core, f"_rocm_sdk_core/lib/rocm_sysdeps/lib/{missing}")
    _ok(_wheelyard("index", "--dist", dist))
    result = _test(tmp_path, dist, _version(sample), "--installer", "uv")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rocm-sdk test failed" in result.stderr
    assert "FAIL " in result.stderr
    assert missing in result.stderr


_HANG = """
import os, subprocess, sys, time
def main():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["HANG_PIDS"], "w") as out:
        out.write(f"{os.getpid()} {child.pid}")
    print("started", flush=True)
    time.sleep(600)
"""


def _fake_rocm_wheel(dist: Path) -> None:
    """A ``rocm`` 1.0 wheel whose ``rocm-sdk`` hangs (and starts a child that hangs too)."""
    info = "rocm-1.0.dist-info"
    members = {
        "rocm_hang.py": _HANG.encode(),
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: rocm\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{info}/entry_points.txt": b"[console_scripts]\nrocm-sdk = rocm_hang:main\n",
    }
    record = f"{info}/RECORD"
    lines = [_record_line(n, d) for n, d in members.items()]
    members[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    (dist / FAMILY).mkdir(parents=True)
    (dist / FAMILY / "index.html").write_text("<!DOCTYPE html><html><body></body></html>\n")
    with zipfile.ZipFile(dist / "rocm-1.0-py3-none-any.whl", "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)


def test_hanging_test_is_stopped_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_rocm_wheel(tmp_path / "dist")
    pids = tmp_path / "pids"
    monkeypatch.setenv("HANG_PIDS", str(pids))
    started = time.monotonic()
    result = _test(
        tmp_path,
        tmp_path / "dist",
        "1.0",
        "--extras",
        "",
        "--installer",
        "uv",
        "--timeout",
        "3",
        timeout=90,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"test {FAMILY}: rocm-sdk test did not finish within --timeout 3 s" in result.stderr
    assert "started" in result.stdout
    assert time.monotonic() - started < 60
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        status = Path(f"/proc/{pid}/status")
        alive = status.exists() and "zombie" not in status.read_text()
        assert not alive, f"process {pid} of the hung test survived"
