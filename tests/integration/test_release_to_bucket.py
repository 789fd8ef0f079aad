"""``publish --to-bucket`` against moto's S3 server on 127.0.0.1: runs uploaded with
``wheelyard upload``, promoted server-side into a release prefix, installed by pip from there."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run_wheelyard
from tests.integration._release import rewrite, wheel_of
from tests.integration._s3 import (
    CREDENTIALS,
    bucket_objects,
    fault_proxy,
    make_public_bucket,
    moto_server,
    s3_client,
)
from tests.integration._venv import isolated_env, run

pytestmark = pytest.mark.integration

FAMILY = "gfx94X-dcgpu"
CI_BUCKET = "therock-ci-artifacts"
RUNS = {"101": "7.10.0rc1", "102": "7.10.0rc2", "103": "7.10.0rc1", "104": "7.10.0.dev0"}
"""Run id -> version; run 103 is run 101 with one wheel changed under the same name."""
CHANGED = "rocm_sdk_libraries_gfx94x_dcgpu-7.10.0rc1-py3-none-manylinux_2_28_x86_64.whl"
PREFIX = "v7.10/python"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))}
    env.update(
        CREDENTIALS,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        COLUMNS="250",
    )
    return env


def _wheelyard(*args: str | Path) -> Any:
    return run_wheelyard(*args, env=_env(), timeout=120)


def _build(out: Path, version: str) -> Path:
    result = _wheelyard("build", FAMILY, "--out", out, "--version", version, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "dist"


def _index(dist: Path) -> None:
    result = _wheelyard("index", "--dist", dist, "-q")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto with three runs of the sample in the CI bucket (built and uploaded once)."""
    tmp = tmp_path_factory.mktemp("to-bucket")
    dists = {
        run_id: _build(tmp / run_id, version) for run_id, version in RUNS.items() if run_id != "103"
    }
    changed = tmp / "103" / "dist"  # no build manifest beside it: index hashes what is there
    shutil.copytree(dists["101"], changed)
    rewrite(wheel_of(changed, CHANGED), lambda name, data: data, {"extra.txt": b"changed\n"})
    dists["103"] = changed
    for dist in dists.values():
        _index(dist)
    with moto_server() as url:
        make_public_bucket(s3_client(url), CI_BUCKET)
        for run_id, dist in dists.items():
            result = _wheelyard(
                "upload", "--dist", dist, "--run-id", run_id, "--bucket", CI_BUCKET,
                "--endpoint-url", url, "-q",
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
        yield url


@pytest.fixture
def release(endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh public release bucket per test."""
    name = "rel-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:16]
    make_public_bucket(s3_client(endpoint), name)
    return name


def _publish(url: str, bucket: str, run_id: str, *extra: str) -> Any:
    return _wheelyard(
        "publish", "--to-bucket", bucket, "--prefix", PREFIX, "--run-id", run_id,
        "--from-bucket", CI_BUCKET, "--endpoint-url", url, *extra,
    )  # fmt: skip


def test_dry_run_reads_only(endpoint: str, release: str) -> None:
    with fault_proxy(endpoint) as proxy:
        result = _publish(proxy.url, release, "101")
        methods = {method for method, _path, _range in proxy.log}
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would copy" in result.stdout
    assert f"{FAMILY}/{CHANGED}" in result.stdout
    assert "dry run: 8 would be copied, 12 pages would be written" in result.stdout
    assert methods <= {"GET", "HEAD"}, methods
    assert bucket_objects(s3_client(endpoint), release) == {}


def test_copy_twice_then_changed_file_stops(endpoint: str, release: str) -> None:
    s3 = s3_client(endpoint)
    first = _publish(endpoint, release, "101", "--execute")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published: 8 copied, 0 already there" in first.stdout
    stored = bucket_objects(s3, release)
    run_objects = bucket_objects(s3, CI_BUCKET, "101-linux/python/")
    for key, data in run_objects.items():  # package files: same keys below the prefix, same bytes
        if key.endswith((".whl", ".metadata")):
            target = f"{PREFIX}/{key.removeprefix('101-linux/python/')}"
            assert stored[target] == data
            head = s3.head_object(Bucket=release, Key=target)
            assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert "immutable" in head["CacheControl"]
    flat = stored[f"{PREFIX}/{FAMILY}/index.html"].decode()
    hrefs = re.findall(r'href="([^"]+)"', flat)
    assert len(hrefs) == 4
    assert all(not href.startswith(("http:", "https:", "/")) for href in hrefs), hrefs

    again = _publish(endpoint, release, "101", "--execute")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "published: 0 copied, 8 already there, 0 pages written" in again.stdout
    assert bucket_objects(s3, release) == stored

    changed = _publish(endpoint, release, "103", "--execute")
    assert changed.returncode != 0
    assert f"s3://{release}/{PREFIX}/{FAMILY}/{CHANGED}" in changed.stderr
    assert "nothing was copied" in changed.stderr
    assert "Traceback" not in changed.stderr
    assert bucket_objects(s3, release) == stored


def test_two_versions_in_one_prefix_install_with_pip(
    endpoint: str, release: str, tmp_path: Path
) -> None:
    for run_id in ("101", "102"):
        result = _publish(endpoint, release, run_id, "--execute")
        assert result.returncode == 0, result.stdout + result.stderr
    url = f"{endpoint}/{release}/{PREFIX}/{FAMILY}/index.html"
    ident = FAMILY.lower().replace("-", "_")
    for version in ("7.10.0rc1", "7.10.0rc2"):
        target = tmp_path / version
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", url]
        run(
            [*pip, "--target", target, f"rocm[libraries,devel]=={version}"],
            isolated_env(tmp_path),
            cwd=tmp_path,
        )
        installed = sorted(p.name for p in target.glob("*.dist-info"))
        assert installed == sorted(
            f"{name}-{version}.dist-info"
            for name in (
                "rocm",
                "rocm_sdk_core",
                f"rocm_sdk_devel_{ident}",
                f"rocm_sdk_libraries_{ident}",
            )
        )


def test_dev_version_is_refused(endpoint: str, release: str) -> None:
    result = _publish(endpoint, release, "104", "--execute")
    assert result.returncode != 0
    assert "7.10.0.dev0 is a dev or local version" in result.stderr
    assert "Traceback" not in result.stderr
    assert bucket_objects(s3_client(endpoint), release) == {}
