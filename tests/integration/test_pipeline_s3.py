"""The S3 half of the pipeline: test a run's uploaded wheels, and ``nox -s pipeline --bucket``.

Everything talks to moto's S3 server on 127.0.0.1 through a logging proxy
(tests/integration/_s3.py), so a test can see which pages and wheels were written, in which
order, and which wheels an installer read back. Two families are built and uploaded once for the
module; ``wheelyard test`` then installs gfx94X-dcgpu from the run's flat page with pip and with
uv. The pipeline session runs from a copy of the noxfile in a temporary directory (it writes
``build/`` beside the noxfile, and the checkout's ``build/`` is not the test's to touch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.integration._s3 import (
    CREDENTIALS,
    Proxy,
    bucket_objects,
    fault_proxy,
    make_public_bucket,
    moto_server,
    s3_client,
)

from wheelyard.upload import select_location

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("gfx94X-dcgpu", "gfx120X-all")
FAMILY = "gfx94X-dcgpu"
PIPELINE_FAMILY = "gfx120X-all"
RUN = "31337"
BUCKET = "wy-pipeline-run"
PIPELINE_BUCKET = "wy-pipeline-nox"
PYTHON = f"{RUN}-linux/python/"
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _env(**extra: str) -> dict[str, str]:
    """moto's fake credentials; no AWS, GitHub or proxy configuration of the machine."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "GITHUB_")) and key.lower() not in proxies
    }
    env.update(CREDENTIALS)
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        # wheelyard, uv and nox of the interpreter running the tests.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(extra)
    return env


def _run(
    *args: str | Path, cwd: Path, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def _dist_files(dist: Path) -> dict[str, bytes]:
    return {
        path.relative_to(dist).as_posix(): path.read_bytes()
        for path in sorted(dist.rglob("*"))
        if path.is_file()
    }


def _family_wheels(dist: Path, family: str) -> list[str]:
    """Dist-relative paths of the wheels ``rocm[libraries,devel]`` installs for ``family``."""
    return sorted(
        p.relative_to(dist).as_posix() for d in (dist, dist / family) for p in d.glob("*.whl")
    )


def _writes(proxy: Proxy, start: int = 0) -> list[str]:
    """Keys (``/bucket/key`` paths) written through the proxy, in order."""
    return [
        path.split("?")[0] for method, path, _ in proxy.log[start:] if method in ("PUT", "POST")
    ]


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    """moto behind a proxy that only logs: the endpoint every command here is given."""
    with moto_server() as endpoint, fault_proxy(endpoint) as logging_proxy:
        yield logging_proxy


@pytest.fixture(scope="module")
def s3(proxy: Proxy) -> Any:
    return s3_client(proxy.upstream)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, proxy: Proxy, s3: Any) -> Path:
    """Two families built and indexed once into ``run_dir/build``, uploaded as run ``RUN``."""
    root = tmp_path_factory.mktemp("pipeline-s3")
    env = _env(GITHUB_OUTPUT=str(root / "github-output"))
    _ok(_run("-m", "wheelyard", "build", *FAMILIES, "--out", "build", cwd=root, env=env))
    _ok(_run("-m", "wheelyard", "index", "--dist", "build/dist", cwd=root, env=env))
    make_public_bucket(s3, BUCKET)
    upload = ("upload", "--dist", "build/dist", "--run-id", RUN, "--bucket", BUCKET)
    _ok(_run("-m", "wheelyard", *upload, "--endpoint-url", proxy.url, cwd=root, env=env))
    return root


def _outputs(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "github-output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def _version(build: Path) -> str:
    return str(json.loads((build / "build-manifest.json").read_text())["version"])


def _assert_installed_from(proxy: Proxy, start: int, bucket: str, dist: Path, family: str) -> None:
    """Every wheel of ``family`` was read from ``bucket`` since ``start`` (no local fallback)."""
    fetched = {path.split("?")[0] for method, path, _ in proxy.log[start:] if method == "GET"}
    for wheel in _family_wheels(dist, family):
        assert f"/{bucket}/{PYTHON}{wheel}" in fetched, sorted(fetched)


def test_the_run_is_in_the_bucket_flat_pages_last(run_dir: Path, proxy: Proxy, s3: Any) -> None:
    dist = run_dir / "build" / "dist"
    assert bucket_objects(s3, BUCKET) == {
        PYTHON + rel: data for rel, data in _dist_files(dist).items()
    }
    ours = f"/{BUCKET}/{PYTHON}"
    written = [path.removeprefix(ours) for path in _writes(proxy) if path.startswith(ours)]
    flat = [f"{family}/index.html" for family in FAMILIES]
    assert sorted(written[-2:]) == sorted(flat)
    last_wheel = max(i for i, rel in enumerate(written) if rel.endswith(".whl"))
    first_page = min(
        i for i, rel in enumerate(written) if rel.endswith(("index.html", "index.json"))
    )
    assert last_wheel < first_page


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_family_passes_from_the_announced_find_links(
    run_dir: Path, proxy: Proxy, tmp_path: Path, installer: str
) -> None:
    announced = _outputs(run_dir)[f"package_find_links_url_{FAMILY}"]
    assert announced == f"{proxy.url}/{BUCKET}/{PYTHON}{FAMILY}/index.html"
    computed = select_location(
        rules=None, run_id=RUN, platform="linux", fork=None, bucket=BUCKET, endpoint_url=proxy.url
    )
    assert computed.find_links_url(FAMILY) == announced
    start = len(proxy.log)
    result = _run(
        "-m", "wheelyard", "test", FAMILY, "--find-links", announced, "--installer", installer,
        "--venv", tmp_path / "venv", "--junitxml", tmp_path / "results.xml",
        cwd=run_dir, env=_env(),
    )  # fmt: skip
    _ok(result)
    # The version comes from build/build-manifest.json of the working directory, as in a checkout.
    wanted = f"rocm[libraries,devel]=={_version(run_dir / 'build')}"
    assert f"testing {wanted} from {announced} with {installer}" in result.stdout
    assert "rocm-sdk test passed" in result.stdout
    assert "<testsuite" in (tmp_path / "results.xml").read_text()
    _assert_installed_from(proxy, start, BUCKET, run_dir / "build" / "dist", FAMILY)


def test_run_id_bucket_and_endpoint_compute_the_same_url(
    run_dir: Path, proxy: Proxy, tmp_path: Path
) -> None:
    announced = _outputs(run_dir)[f"package_find_links_url_{FAMILY}"]
    start = len(proxy.log)
    result = _run(
        "-m", "wheelyard", "test", FAMILY, "--run-id", RUN, "--bucket", BUCKET,
        "--endpoint-url", proxy.url, "--installer", "uv",
        "--venv", tmp_path / "venv", "--junitxml", tmp_path / "results.xml",
        cwd=tmp_path, env=_env(),
    )  # fmt: skip
    _ok(result)
    assert f" from {announced} with uv" in result.stdout
    assert "rocm-sdk test passed" in result.stdout
    _assert_installed_from(proxy, start, BUCKET, run_dir / "build" / "dist", FAMILY)


def test_endpoint_url_needs_run_id(tmp_path: Path) -> None:
    result = _run(
        "-m", "wheelyard", "test", FAMILY, "--endpoint-url", "http://127.0.0.1:9",
        cwd=tmp_path, env=_env(),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: argument --endpoint-url: only applies with --run-id" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "build").exists()


def test_nox_pipeline_with_bucket_and_endpoint(tmp_path: Path, proxy: Proxy, s3: Any) -> None:
    """The ``pipeline`` session, nox running in this environment (``--no-venv``)."""
    (tmp_path / "packaging" / "rocm").mkdir(parents=True)
    for name in ("noxfile.py", "pyproject.toml", "packaging/rocm/families.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    make_public_bucket(s3, PIPELINE_BUCKET)
    start = len(proxy.log)
    result = _run(
        "-m", "nox", "--no-venv", "-f", tmp_path / "noxfile.py", "-s", "pipeline", "--",
        PIPELINE_FAMILY, "--bucket", PIPELINE_BUCKET, "--endpoint-url", proxy.url,
        "--run-id", RUN,
        cwd=tmp_path, env=_env(), timeout=150,
    )  # fmt: skip
    _ok(result)
    output = result.stdout + result.stderr
    find_links = f"{proxy.url}/{PIPELINE_BUCKET}/{PYTHON}{PIPELINE_FAMILY}/index.html"
    assert f"wheelyard test {PIPELINE_FAMILY} --find-links {find_links}" in output
    assert f"{PIPELINE_FAMILY}: rocm-sdk test passed" in output
    assert "Session pipeline was successful" in output
    assert "<testsuite" in (tmp_path / "build/test-results" / f"{PIPELINE_FAMILY}.xml").read_text()
    dist = tmp_path / "build" / "dist"
    stored = bucket_objects(s3, PIPELINE_BUCKET)
    assert stored == {PYTHON + rel: data for rel, data in _dist_files(dist).items()}
    assert any(key.endswith(".whl") for key in stored)
    written = _writes(proxy, start)
    assert written[-1] == f"/{PIPELINE_BUCKET}/{PYTHON}{PIPELINE_FAMILY}/index.html"
    assert all(path.startswith(f"/{PIPELINE_BUCKET}/") for path in written)
    _assert_installed_from(proxy, start, PIPELINE_BUCKET, dist, PIPELINE_FAMILY)
