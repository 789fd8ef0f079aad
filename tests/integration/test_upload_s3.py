"""``wheelyard upload`` and ``fetch-artifacts`` against moto's S3 server on 127.0.0.1.

boto3 in the CLI talks to the server over HTTP through ``--endpoint-url``, exactly as it talks
to AWS; pip installs from the uploaded flat pages over HTTP. A fault-injecting proxy
(tests/integration/_s3.py) stands between them where a test needs to see or break requests.
The sample is built and indexed once for the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SAMPLE, run_wheelyard
from tests.integration._s3 import (
    CREDENTIALS,
    Fault,
    bucket_objects,
    fault_proxy,
    make_public_bucket,
    moto_server,
    s3_client,
)
from tests.integration._venv import isolated_env, run

pytestmark = pytest.mark.integration

FAMILIES = ("gfx94X-dcgpu", "gfx120X-all")
RUN = "4242"
PREFIX = f"{RUN}-linux/python/"
CI_BUCKET = "therock-ci-artifacts"
FORK_BUCKET = "therock-ci-artifacts-external"
PAGES = ("index.html", "index.json")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("upload-sample") / "build"
    for args in (("build", *FAMILIES, "--out", out), ("index", "--dist", out / "dist")):
        result = run_wheelyard(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    return out / "dist"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str) -> Any:
    return s3_client(endpoint)


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    """A fresh public bucket per test."""
    name = "wy-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:20]
    make_public_bucket(s3, name)
    return name


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """No real AWS or GitHub configuration; moto's fake credentials; Actions files in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))}
    env.update(CREDENTIALS)
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        GITHUB_OUTPUT=str(tmp / "github-output"),
        GITHUB_STEP_SUMMARY=str(tmp / "step-summary.md"),
    )
    env.update(extra)
    return env


def _upload(dist: Path, url: str, tmp: Path, *args: str, **env: str) -> Any:
    return run_wheelyard(
        "upload",
        "--dist",
        dist,
        "--run-id",
        RUN,
        "--endpoint-url",
        url,
        *args,
        env=_env(tmp, **env),
    )


def _dist_files(dist: Path, groups: tuple[str, ...] = FAMILIES) -> dict[str, bytes]:
    files = {}
    for path in sorted(dist.rglob("*")):
        relative = path.relative_to(dist).as_posix()
        if path.is_file() and (relative.count("/") == 0 or relative.split("/")[0] in groups):
            files[relative] = path.read_bytes()
    return files


def _is_page(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in PAGES


def test_two_families_upload_and_pip_installs_each(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    with fault_proxy(endpoint) as proxy:
        result = _upload(dist, proxy.url, tmp_path, "--bucket", bucket)
        assert result.returncode == 0, result.stderr
        writes = [path.split("?")[0] for m, path, _ in proxy.log if m in ("PUT", "POST")]
    stored = bucket_objects(s3, bucket)
    assert stored == {PREFIX + rel: data for rel, data in _dist_files(dist).items()}
    wheel = f"{PREFIX}rocm_sdk_core-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"
    head = s3.head_object(Bucket=bucket, Key=wheel)
    assert head["ContentType"] == "application/zip"
    assert "immutable" in head["CacheControl"]
    assert head["Metadata"]["sha256"] == hashlib.sha256(stored[wheel]).hexdigest()
    page = s3.head_object(Bucket=bucket, Key=f"{PREFIX}gfx120X-all/index.html")
    assert page["ContentType"].startswith("text/html")
    assert page["CacheControl"] == "no-cache"
    # Package files, then sidecars, then pages; each family's flat page after everything else.
    relatives = [path.removeprefix(f"/{bucket}/{PREFIX}") for path in writes]
    kinds = [
        "flat"
        if rel.count("/") == 1 and rel.endswith("/index.html")
        else "page"
        if _is_page(rel)
        else "file"
        for rel in relatives
    ]
    assert kinds == sorted(kinds, key=["file", "page", "flat"].index)
    assert kinds.count("flat") == 2
    outputs = dict(
        line.split("=", 1) for line in (tmp_path / "github-output").read_text().splitlines()
    )
    summary = (tmp_path / "step-summary.md").read_text()
    everything = result.stdout + result.stderr + summary + json.dumps(outputs)
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in everything
    assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in everything
    assert "uv pip install" in summary
    for family in FAMILIES:
        announced = outputs[f"package_find_links_url_{family}"]
        assert announced == f"{proxy.url}/{bucket}/{PREFIX}{family}/index.html"
        assert f"--find-links={announced}" in summary
        url = f"{endpoint}/{bucket}/{PREFIX}{family}/index.html"
        target = tmp_path / f"site-{family}"
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", url]
        run(
            [*pip, "--target", target, "rocm[libraries,devel]"],
            isolated_env(tmp_path),
            cwd=tmp_path,
        )
        installed = sorted(p.name.split("-")[0] for p in target.glob("*.dist-info"))
        ident = family.lower().replace("-", "_")
        assert installed == sorted(
            ["rocm", "rocm_sdk_core", f"rocm_sdk_devel_{ident}", f"rocm_sdk_libraries_{ident}"]
        )
    assert outputs["package_find_links_url"] == outputs["package_find_links_url_gfx120X-all"]


def _changed_copy(dist: Path, tmp: Path, relative: str) -> Path:
    """A copy of the dist (without the build manifest) where one file has other bytes."""
    copy = tmp / "changed" / "dist"
    shutil.copytree(dist, copy)
    data = bytearray((copy / relative).read_bytes())
    data[-1] ^= 0xFF
    (copy / relative).write_bytes(bytes(data))
    return copy


def test_reupload_sends_nothing_and_changed_bytes_fail_naming_the_key(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    assert _upload(dist, endpoint, tmp_path, "--bucket", bucket).returncode == 0
    before = bucket_objects(s3, bucket)
    wheel = (
        "gfx120X-all/rocm_sdk_libraries_gfx120x_all-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"
    )
    changed = _changed_copy(dist, tmp_path, wheel)
    with fault_proxy(endpoint) as proxy:
        again = _upload(dist, proxy.url, tmp_path, "--bucket", bucket)
        assert again.returncode == 0, again.stderr
        assert f"skipped {len(_dist_files(dist))} already there (0 B sent)" in again.stderr
        refused = _upload(changed, proxy.url, tmp_path, "--bucket", bucket)
        writes = [path for method, path, _ in proxy.log if method in ("PUT", "POST", "DELETE")]
    assert writes == []
    assert refused.returncode == 1
    assert f"s3://{bucket}/{PREFIX}{wheel}: holds sha256" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert bucket_objects(s3, bucket) == before


def _fault_first_attempts(kinds: tuple[Fault, ...]) -> Any:
    """The first attempt of every write fails (kinds in turn), and of every fifth read; two
    requests are throttled (SlowDown), which makes botocore's adaptive mode slow down."""
    counter = iter(range(1_000_000))

    def policy(method: str, path: str, seen: int) -> Fault | None:
        if seen > 0:
            return None
        number = next(counter)
        if number in (3, 11):
            return "slowdown"
        if method in ("PUT", "POST"):
            return kinds[number % len(kinds)]
        return "503" if method == "HEAD" and number % 5 == 0 else None

    return policy


def test_transient_faults_are_retried_until_every_object_is_right(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    copy = tmp_path / "dist"
    shutil.copytree(dist, copy)
    (copy / "large-file.bin").write_bytes(os.urandom(20 << 20))  # three parts of 8 MiB
    policy = _fault_first_attempts(("503", "500", "drop", "drop-after"))
    with fault_proxy(endpoint, policy) as proxy:
        result = _upload(copy, proxy.url, tmp_path, "--bucket", bucket, "--multipart-mib", "8")
        injected = {fault for _, _, fault in proxy.injected}
        multipart = [path for method, path, _ in proxy.log if "partNumber=" in path]
    assert result.returncode == 0, result.stderr
    assert injected == {"503", "500", "slowdown", "drop", "drop-after"}
    assert len({path.split("partNumber=")[1][:1] for path in multipart}) == 3
    stored = bucket_objects(s3, bucket)
    assert stored == {PREFIX + rel: data for rel, data in _dist_files(copy).items()}


def test_persistent_faults_fail_clearly_and_write_no_index_page(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    core = "rocm_sdk_core-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"

    def policy(method: str, path: str, seen: int) -> Fault | None:
        return "500" if method == "PUT" and path.endswith(core) else None

    with fault_proxy(endpoint, policy) as proxy:
        result = _upload(dist, proxy.url, tmp_path, "--bucket", bucket, "--max-attempts", "3")
        attempts = [path for method, path, _ in proxy.log if method == "PUT" and core in path]
    assert result.returncode == 1
    assert f"s3://{bucket}/{PREFIX}{core}: InternalError (HTTP 500, 3 attempts)" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(attempts) == 3
    keys = set(bucket_objects(s3, bucket))
    assert keys, "the other package files were uploaded"
    assert not [key for key in keys if _is_page(key)]


def test_a_writer_racing_between_check_and_put_is_not_overwritten(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Another run creates the key after the HEAD check: the conditional put must refuse."""
    core = "rocm_sdk_core-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"

    def policy(method: str, path: str, seen: int) -> Fault | None:
        if method == "PUT" and path.endswith(core) and seen == 0:
            s3.put_object(Bucket=bucket, Key=PREFIX + core, Body=b"the other writer")
        return None

    with fault_proxy(endpoint, policy) as proxy:
        result = _upload(dist, proxy.url, tmp_path, "--bucket", bucket)
    assert result.returncode == 1
    assert f"s3://{bucket}/{PREFIX}{core}: exists without sha256 metadata" in result.stderr
    stored = bucket_objects(s3, bucket)
    assert stored[PREFIX + core] == b"the other writer"
    assert not [key for key in stored if _is_page(key)]
    assert proxy.injected == []


def test_dry_run_sends_no_request(dist: Path, endpoint: str, tmp_path: Path) -> None:
    with fault_proxy(endpoint) as proxy:
        result = _upload(dist, proxy.url, tmp_path, "--bucket", "any-bucket", "--dry-run")
        seen = list(proxy.log)
    assert result.returncode == 0, result.stderr
    assert seen == []
    wheel = "rocm_sdk_core-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"
    assert f"{PREFIX}{wheel}" in result.stdout
    assert "application/zip" in result.stdout
    assert "text/html; charset=utf-8" in result.stdout
    assert f"{(dist / wheel).stat().st_size / 1024:.1f} KiB" in result.stdout


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_output_dir_holds_the_same_keys_and_bytes_as_s3(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    out = tmp_path / "mirror"
    assert _upload(dist, endpoint, tmp_path, "--bucket", bucket).returncode == 0
    local = _upload(dist, endpoint, tmp_path, "--bucket", bucket, "--output-dir", out)
    assert local.returncode == 0, local.stderr
    assert _tree(out) == bucket_objects(s3, bucket)
    assert (
        f"--find-links={out.resolve().as_uri()}/{PREFIX}gfx94X-dcgpu/index.html"
        in (tmp_path / "step-summary.md").read_text()
    )
    again = _upload(dist, endpoint, tmp_path, "--bucket", bucket, "--output-dir", out)
    assert f"skipped {len(_dist_files(dist))} already there" in again.stderr
    wheel = "gfx94X-dcgpu/rocm-7.10.0.dev0-py3-none-any.whl"
    changed = _changed_copy(dist, tmp_path, wheel)
    before = _tree(out)
    refused = _upload(changed, endpoint, tmp_path, "--bucket", bucket, "--output-dir", out)
    assert refused.returncode == 1
    assert f"{out / PREFIX / wheel}: holds sha256" in refused.stderr
    assert _tree(out) == before


def test_fork_runs_land_under_the_fork_prefix_in_the_external_bucket(
    dist: Path, endpoint: str, s3: Any, tmp_path: Path
) -> None:
    for name in (CI_BUCKET, FORK_BUCKET):
        make_public_bucket(s3, name)
    # The server is shared with other tests' runs: the main bucket must be left as it was.
    main_before = bucket_objects(s3, CI_BUCKET)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"head": {"repo": {"full_name": "alice/TheRock"}}}})
    )
    result = run_wheelyard(
        "upload",
        "--dist",
        dist,
        "--endpoint-url",
        endpoint,
        "--group",
        "gfx94X-dcgpu",
        env=_env(
            tmp_path,
            GITHUB_REPOSITORY="ROCm/TheRock",
            GITHUB_EVENT_PATH=str(event),
            GITHUB_RUN_ID="777",
        ),
    )
    assert result.returncode == 0, result.stderr
    assert bucket_objects(s3, CI_BUCKET) == main_before
    prefix = "alice-TheRock/777-linux/python/"
    expected = _dist_files(dist, groups=("gfx94X-dcgpu",))
    fork = {k: v for k, v in bucket_objects(s3, FORK_BUCKET).items() if "/777-linux/" in k}
    assert fork == {prefix + rel: data for rel, data in expected.items()}


def _archive(artifact: Path, out: Path) -> Path:
    """``NAME.tar.xz`` (manifest first, as TheRock writes them) and ``NAME.tar.xz.sha256sum``."""
    target = out / f"{artifact.name}.tar.xz"
    with tarfile.open(target, "w:xz") as tar:
        tar.add(artifact / "artifact_manifest.txt", arcname="artifact_manifest.txt")
        for path in sorted(artifact.rglob("*")):
            relative = path.relative_to(artifact).as_posix()
            if relative != "artifact_manifest.txt":
                tar.add(path, arcname=relative, recursive=False)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (out / f"{target.name}.sha256sum").write_text(f"{digest}  {target.name}\n")
    return target


def _put_run(s3: Any, bucket: str, prefix: str, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)


def _fetch(url: str, tmp: Path, run: str, out: Path, *args: str) -> Any:
    return run_wheelyard(
        "fetch-artifacts",
        "--run-id",
        run,
        "--family",
        "gfx94X-dcgpu",
        "--out",
        out,
        "--endpoint-url",
        url,
        *args,
        env=_env(tmp),
    )


def test_fetch_artifacts_round_trip_resumes_verifies_and_builds(
    dist: Path, endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    for artifact in sorted(SAMPLE.iterdir()):
        if artifact.is_dir() and artifact.name.endswith(
            ("_generic", "_gfx94X-dcgpu", "_gfx120X-all")
        ):
            _archive(artifact, archives)
    files = {path.name: path.read_bytes() for path in archives.iterdir()}
    files["python/index.html"] = b"not an artifact"
    _put_run(s3, bucket, "5150-linux/", files)
    out = tmp_path / "fetched"
    out.mkdir()
    resumed = "core-hip_lib_generic.tar.xz"
    (out / f".{resumed}.part").write_bytes(files[resumed][: len(files[resumed]) // 2])
    with fault_proxy(endpoint) as proxy:
        dry = _fetch(proxy.url, tmp_path, "5150", out, "--bucket", bucket, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert [m for m, _, _ in proxy.log] == ["GET"], "a dry run only lists"
        result = _fetch(proxy.url, tmp_path, "5150", out, "--bucket", bucket)
        ranges = [(path, byte_range) for _, path, byte_range in proxy.log if byte_range]
    assert result.returncode == 0, result.stderr
    assert ranges == [(f"/{bucket}/5150-linux/{resumed}", f"bytes={len(files[resumed]) // 2}-")]
    wanted = {n for n in files if n.split(".")[0].endswith(("_generic", "_gfx94X-dcgpu"))}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {n: files[n] for n in wanted}
    built = tmp_path / "build"
    result = run_wheelyard("build", "gfx94X-dcgpu", "--artifacts", out, "--out", built)
    assert result.returncode == 0, result.stderr
    wheels = sorted(p.relative_to(built / "dist") for p in (built / "dist").rglob("*.whl"))
    assert wheels == sorted(
        p.relative_to(dist) for p in (*dist.glob("*.whl"), *dist.glob("gfx94X-dcgpu/*.whl"))
    )
    for wheel in wheels:  # archives build the same bytes as the sample directories
        assert (built / "dist" / wheel).read_bytes() == (dist / wheel).read_bytes()


def _snapshot(path: Path) -> tuple[bytes, int, int]:
    status = path.stat()
    return path.read_bytes(), status.st_mode, status.st_mtime_ns


HOSTILE = (
    "../../escape_lib_generic.tar.xz",
    "..\\escape_lib_generic.tar.xz",
    "x\x1b[2J_lib_generic.tar.xz",
)


def test_fetch_refuses_listing_keys_that_leave_the_run_prefix(
    endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    canary = tmp_path / "escape_lib_generic.tar.xz"  # where out/../../NAME would land
    canary.write_bytes(b"canary")
    canary.chmod(0o600)
    os.utime(canary, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(canary)
    files = {"base_lib_generic.tar.xz": b"x", "blas_lib_gfx94X-dcgpu.tar.xz": b"y"}
    _put_run(s3, bucket, "6000-linux/", {**files, **dict.fromkeys(HOSTILE, b"evil")})
    out = tmp_path / "a" / "out"
    result = _fetch(endpoint, tmp_path, "6000", out, "--bucket", bucket)
    assert result.returncode == 1
    assert "not safe relative paths" in result.stderr
    for key in HOSTILE:
        assert repr(f"6000-linux/{key}") in result.stderr
    assert "\x1b" not in result.stderr, "control characters are shown escaped"
    assert not out.exists()
    assert _snapshot(canary) == before


def test_fetch_rejects_an_archive_that_does_not_match_its_checksum(
    endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    name = "base_lib_generic.tar.xz"
    files = {name: b"good bytes", f"{name}.sha256sum": f"{'0' * 64}  {name}\n".encode()}
    files["blas_lib_gfx94X-dcgpu.tar.xz"] = b"other"
    _put_run(s3, bucket, "7000-linux/", files)
    out = tmp_path / "out"
    result = _fetch(endpoint, tmp_path, "7000", out, "--bucket", bucket)
    assert result.returncode == 1
    assert f"7000-linux/{name}: sha256" in result.stderr
    assert "does not match" in result.stderr
    assert not (out / name).exists()
    assert not (out / f".{name}.part").exists()
