"""The upload layout (keys, buckets, URLs, headers), the upload and fetch plans, and the
directory backend's never-overwrite and confinement rules; all offline."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from tests.conftest import PROFILE

from wheelyard.errors import FetchError, ProfileError, UploadError, UsageError
from wheelyard.report import Reporter
from wheelyard.upload import (
    BucketRules,
    GitHubRun,
    ListedObject,
    RunLocation,
    apply_upload,
    check_relative_key,
    load_bucket_rules,
    parse_bucket_rules,
    plan_fetch,
    plan_upload,
    select_location,
)
from wheelyard.upload.layout import cache_control, content_type, phase
from wheelyard.upload.local import DirectoryBackend
from wheelyard.wheelfile import FileDigest

RULES = load_bucket_rules(PROFILE)


def _location() -> RunLocation:
    return select_location(rules=RULES, run_id="123", platform="linux", fork=None)


def test_profile_rules_and_main_repository_keys() -> None:
    location = select_location(rules=RULES, run_id="123", platform="linux", fork=None)
    assert location.bucket == "therock-ci-artifacts"
    assert location.python_prefix == "123-linux/python/"
    key = location.key("gfx120X-all/rocm-7.10.0.dev0+g1a2b-py3-none-any.whl")
    assert key == "123-linux/python/gfx120X-all/rocm-7.10.0.dev0+g1a2b-py3-none-any.whl"
    assert location.uri(key) == f"s3://therock-ci-artifacts/{key}"
    assert location.url(key) == (
        "https://therock-ci-artifacts.s3.amazonaws.com/123-linux/python/gfx120X-all/"
        "rocm-7.10.0.dev0%2Bg1a2b-py3-none-any.whl"
    )
    assert location.find_links_url("gfx94X-dcgpu").endswith("/python/gfx94X-dcgpu/index.html")


def test_fork_runs_use_the_fork_bucket_and_an_owner_repo_prefix() -> None:
    location = select_location(rules=RULES, run_id="9", platform="windows", fork="alice/TheRock")
    assert location.bucket == "therock-ci-artifacts-external"
    assert location.run_prefix == "alice-TheRock/9-windows/"
    with pytest.raises(UploadError, match="nightly uploads come from ROCm/TheRock only"):
        select_location(
            rules=RULES, run_id="9", platform="linux", fork="alice/TheRock", release_type="nightly"
        )


@pytest.mark.parametrize(
    ("release_type", "bucket"),
    [("dev", "therock-dev-artifacts"), ("nightly", "therock-nightly-artifacts")],
)
def test_release_types_choose_their_bucket(release_type: str, bucket: str) -> None:
    location = select_location(
        rules=RULES,
        run_id="1",
        platform="linux",
        fork=None,
        release_type=release_type,  # type: ignore[arg-type]
    )
    assert location.bucket == bucket


def test_bucket_override_endpoint_and_no_secrets_in_urls() -> None:
    location = select_location(
        rules=None,
        run_id="1",
        platform="linux",
        fork=None,
        bucket="my-bucket",
        endpoint_url="http://user:secret@127.0.0.1:9000/",
    )
    assert location.base_url == "http://127.0.0.1:9000/my-bucket"
    with pytest.raises(UsageError, match="--bucket"):
        select_location(rules=None, run_id="1", platform="linux", fork=None)
    with pytest.raises(UsageError, match="--run-id"):
        select_location(rules=RULES, run_id="../1", platform="linux", fork=None)
    with pytest.raises(UsageError, match="--bucket"):
        select_location(rules=RULES, run_id="1", platform="linux", fork=None, bucket="Bad_Bucket")


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "a/../../b", "..", "a\\b", "a\x00b", "a//b", "./a", "a/\x1b[2J"]
)
def test_keys_that_leave_the_prefix_are_refused(key: str) -> None:
    with pytest.raises(UploadError, match="would leave the run prefix"):
        check_relative_key(key)


def test_headers_and_order_by_kind_of_file() -> None:
    assert content_type("a.whl") == "application/zip"
    assert content_type("f/simple/rocm/index.json") == "application/vnd.pypi.simple.v1+json"
    assert content_type("f/index.html").startswith("text/html")
    assert cache_control("a.whl").endswith("immutable")
    assert cache_control("f/index.html") == "no-cache"
    assert phase("a.whl") == "file"
    assert phase("a.whl.metadata") == "metadata"
    assert phase("index.html") == "page"
    assert phase("f/simple/index.html") == "page"
    assert phase("f/index.html") == "flat-page"


def test_github_environment(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"full_name": "bob/TheRock"}}}}))
    environ = {
        "GITHUB_REPOSITORY": "ROCm/TheRock",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "77",
    }
    run = GitHubRun.from_environment(environ)
    assert (run.run_id, run.fork("ROCm/TheRock")) == ("77", "bob/TheRock")
    push = GitHubRun(repository="ROCm/TheRock", run_id="1")
    assert push.fork("ROCm/TheRock") is None
    assert GitHubRun(repository="carol/TheRock").fork("ROCm/TheRock") == "carol/TheRock"
    assert GitHubRun().fork("ROCm/TheRock") is None
    event.write_text("{not json")
    with pytest.raises(UploadError, match="GITHUB_EVENT_PATH"):
        GitHubRun.from_environment(environ)


def test_rules_table_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "packages.toml"
    assert parse_bucket_rules({}, path) is None
    table = {"main_repository": "o/r", "ci_bucket": "ci-bucket", "fork_bucket": "fork-bucket"}
    with pytest.raises(ProfileError, match=r"\[upload.release_buckets\]: 'dev'"):
        parse_bucket_rules({"upload": table}, path)
    releases = {"dev": "d-b", "nightly": "n-b", "prerelease": "p-b", "x": "UPPER"}
    rules = parse_bucket_rules({"upload": {**table, "release_buckets": releases}}, path)
    assert isinstance(rules, BucketRules)
    with pytest.raises(ProfileError, match="not a valid S3 bucket name"):
        parse_bucket_rules(
            {"upload": {**table, "ci_bucket": "A", "release_buckets": releases}}, path
        )


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _dist(root: Path, *, extra_link: str = "") -> Path:
    """A tiny indexed dist: one generic wheel, one family with its meta, pages and sidecars."""
    dist = root / "dist"
    _write(dist / "core-1.0-py3-none-any.whl", b"core")
    _write(dist / "core-1.0-py3-none-any.whl.metadata", b"Name: core")
    _write(dist / "index.html", "<html>landing</html>")
    for family in ("fam-a", "fam-b"):
        _write(dist / family / "rocm-1.0-py3-none-any.whl", family)
        _write(dist / family / "rocm-1.0-py3-none-any.whl.metadata", b"Name: rocm")
        _write(dist / family / "simple" / "rocm" / "index.html", "<a href='x'>x</a>")
        _write(dist / family / "simple" / "index.html", "<a href='rocm/'>rocm</a>")
        links = (
            '<a href="../core-1.0-py3-none-any.whl#sha256=00" data-core-metadata="sha256=00">c</a>'
            '<a href="rocm-1.0-py3-none-any.whl#sha256=00" data-dist-info-metadata="true">r</a>'
        )
        _write(dist / family / "index.html", links + extra_link)
    return dist


def test_upload_plan_order_groups_and_manifest(tmp_path: Path) -> None:
    dist = _dist(tmp_path)
    manifest = {
        "files": [{"path": "dist/core-1.0-py3-none-any.whl", "sha256": "ab" * 32, "size": 4}]
    }
    _write(tmp_path / "build-manifest.json", json.dumps(manifest))
    hashed: list[str] = []

    def hasher(path: Path) -> FileDigest:
        hashed.append(path.name)
        return FileDigest(hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)

    plan = plan_upload(dist=dist, location=_location(), groups=["fam-a"], hasher=hasher)
    relatives = [item.relative for item in plan.objects]
    assert relatives == [
        "fam-a/rocm-1.0-py3-none-any.whl",
        "core-1.0-py3-none-any.whl",
        "fam-a/rocm-1.0-py3-none-any.whl.metadata",
        "core-1.0-py3-none-any.whl.metadata",
        "fam-a/simple/rocm/index.html",
        "fam-a/simple/index.html",
        "index.html",
        "fam-a/index.html",
    ]
    core = next(item for item in plan.objects if item.relative == "core-1.0-py3-none-any.whl")
    assert core.sha256 == "ab" * 32
    assert "core-1.0-py3-none-any.whl" not in hashed
    assert plan.find_links_urls() == {
        "fam-a": "https://therock-ci-artifacts.s3.amazonaws.com/123-linux/python/fam-a/index.html"
    }


def test_upload_plan_refuses_broken_links_symlinks_and_stale_manifests(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "one", extra_link='<a href="gone-1.0-py3-none-any.whl">g</a>')
    with pytest.raises(UploadError, match="fam-a/index.html links fam-a/gone-1.0"):
        plan_upload(dist=dist, location=_location())
    dist = _dist(tmp_path / "two")
    (dist / "fam-a" / "evil.whl").symlink_to("/etc/passwd")
    with pytest.raises(UploadError, match="evil.whl is a symlink"):
        plan_upload(dist=dist, location=_location())
    dist = _dist(tmp_path / "three")
    stale = {"files": [{"path": "dist/core-1.0-py3-none-any.whl", "sha256": "00", "size": 99}]}
    _write(tmp_path / "three" / "build-manifest.json", json.dumps(stale))
    with pytest.raises(UploadError, match="is 4 bytes but the build manifest says 99"):
        plan_upload(dist=dist, location=_location())
    with pytest.raises(UploadError, match="no indexed family directory for fam-z"):
        plan_upload(dist=dist, location=_location(), groups=["fam-z"])


def _reporter() -> Reporter:
    return Reporter(stream=io.StringIO())


def test_directory_backend_never_overwrites_and_skips_what_is_there(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "a")
    out = tmp_path / "out"
    backend = DirectoryBackend(root=out)
    plan = plan_upload(dist=dist, location=_location())
    first = apply_upload(plan, backend, reporter=_reporter())
    assert first.count("uploaded") == len(plan.objects)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        item.key for item in plan.objects
    }
    assert apply_upload(plan, backend, reporter=_reporter()).count("skipped") == len(plan.objects)
    changed = _dist(tmp_path / "b")
    (changed / "fam-b" / "rocm-1.0-py3-none-any.whl").write_bytes(b"other")
    (changed / "fam-b" / "index.html").write_text("new page")
    key = "123-linux/python/fam-b/rocm-1.0-py3-none-any.whl"
    page = out / "123-linux/python/fam-b/index.html"
    old_page = page.read_bytes()
    with pytest.raises(UploadError, match=f"{out / key}: holds sha256"):
        apply_upload(plan_upload(dist=changed, location=_location()), backend, reporter=_reporter())
    assert (out / key).read_text() == "fam-b"
    assert page.read_bytes() == old_page


def test_directory_backend_does_not_write_through_symlinks(tmp_path: Path) -> None:
    canary_dir = tmp_path / "elsewhere"
    canary = canary_dir / "keep.txt"
    _write(canary, "canary")
    canary.chmod(0o600)
    os.utime(canary, ns=(10**9, 10**9))
    before = (canary.read_bytes(), canary.stat().st_mode, canary.stat().st_mtime_ns)
    out = tmp_path / "out"
    (out / "123-linux").mkdir(parents=True)
    (out / "123-linux" / "python").symlink_to(canary_dir)
    plan = plan_upload(dist=_dist(tmp_path / "a"), location=_location())
    with pytest.raises(UploadError, match="is a symlink: refusing to write through it"):
        apply_upload(plan, DirectoryBackend(root=out), reporter=_reporter())
    assert sorted(p.name for p in canary_dir.iterdir()) == ["keep.txt"]
    assert (canary.read_bytes(), canary.stat().st_mode, canary.stat().st_mtime_ns) == before


def _listing(*keys: str) -> list[ListedObject]:
    return [ListedObject(key=key, size=10, etag='"e"') for key in keys]


def test_fetch_plan_picks_families_generic_and_checksums(tmp_path: Path) -> None:
    listing = _listing(
        "5-linux/base_lib_generic.tar.xz",
        "5-linux/base_lib_generic.tar.xz.sha256sum",
        "5-linux/blas_lib_gfx94X-dcgpu.tar.zst",
        "5-linux/blas_lib_gfx120X-all.tar.xz",
        "5-linux/python/gfx94X-dcgpu/index.html",
        "5-linux/README.tar.xz",
        "6-linux/other_lib_generic.tar.xz",
    )
    location = select_location(rules=RULES, run_id="5", platform="linux", fork=None)
    plan = plan_fetch(listing, location=location, families=["gfx94X-dcgpu"], out=tmp_path)
    assert [(a.name, a.family, a.checksum_key) for a in plan.archives] == [
        ("base_lib_generic.tar.xz", "generic", "5-linux/base_lib_generic.tar.xz.sha256sum"),
        ("blas_lib_gfx94X-dcgpu.tar.zst", "gfx94X-dcgpu", None),
    ]
    with pytest.raises(FetchError, match="no artifact archives for gfx950-dcgpu"):
        plan_fetch(listing, location=location, families=["gfx950-dcgpu"], out=tmp_path)
    hostile = _listing("5-linux/base_lib_generic.tar.xz", "5-linux/../x_lib_generic.tar.xz")
    with pytest.raises(FetchError, match="not safe relative paths"):
        plan_fetch(hostile, location=location, families=[], out=tmp_path)
