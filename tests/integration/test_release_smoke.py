"""release-smoke: a good set passes (with a test install); each defect fails by file and check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import PROFILE, run_wheelyard
from tests.integration._release import (
    FAMILY,
    RC,
    build_sample,
    copy_dist,
    flip_byte,
    rewrite,
    wheel_of,
)

from wheelyard.profile import load_profile
from wheelyard.release import SmokeOptions, failures, smoke

pytestmark = pytest.mark.integration
LIBRARIES = "rocm_sdk_libraries_gfx120x_all"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("smoke") / "build")


def _failed(dist: Path, version: str = RC, **kwargs: object) -> set[tuple[str, str]]:
    """(subject, check) of every failed check, without the install test."""
    options = SmokeOptions(
        dist=dist, expect_version=version, profile=PROFILE, install=False, jobs=2, **kwargs
    )  # type: ignore[arg-type]
    return {(check.subject, check.name) for check in failures(smoke(options))}


def test_good_set_passes_with_install_and_rocm_sdk_test(good: Path, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "250"}
    result = run_wheelyard(
        "release-smoke", "--dist", good, "--expect-version", RC, env=env, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "install-test" in result.stdout
    assert "release smoke passed" in result.stdout
    assert "FAILED" not in result.stdout


def test_flipped_byte_fails_the_crc(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel = wheel_of(dist, LIBRARIES)
    flip_byte(wheel, "TensileManifest.txt")
    assert _failed(dist) >= {(f"{FAMILY}/{wheel.name}", "zip-crc")}
    result = run_wheelyard("release-smoke", "--dist", dist, "--expect-version", RC, "--no-install")
    assert result.returncode == 1
    assert f"FAILED {FAMILY}/{wheel.name}: zip-crc: " in result.stdout
    assert "TensileManifest.txt" in result.stdout


def test_record_hash_mismatch(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel = wheel_of(dist, LIBRARIES)
    rewrite(wheel, lambda name, data: data + b"#" if name.endswith("__init__.py") else data)
    assert _failed(dist) == {(f"{FAMILY}/{wheel.name}", "record")}


def test_file_missing_from_record(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel = wheel_of(dist, "rocm_sdk_core")
    rewrite(wheel, lambda name, data: data, extra={"_rocm_sdk_core/smuggled.py": b"x = 1\n"})
    assert _failed(dist) == {(wheel.name, "record")}


def test_missing_metadata(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel = wheel_of(dist, "rocm-")
    rewrite(wheel, lambda name, data: None if name.endswith(".dist-info/METADATA") else data)
    failed = _failed(dist)
    assert (f"{FAMILY}/{wheel.name}", "dist-info") in failed
    assert {subject for subject, _ in failed} == {f"{FAMILY}/{wheel.name}"}


def test_filename_and_metadata_versions_differ(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel = wheel_of(dist, "rocm_sdk_core")

    def bump(name: str, data: bytes) -> bytes:
        if name.endswith(".dist-info/METADATA"):
            return data.replace(f"Version: {RC}".encode(), b"Version: 7.10.0rc2")
        return data

    rewrite(wheel, bump)
    assert (wheel.name, "version") in _failed(dist)


def test_dev_version_fails_unless_allowed(tmp_path: Path) -> None:
    dist = build_sample(tmp_path / "build", "7.10.0.dev0")
    failed = _failed(dist, "7.10.0.dev0")
    assert {check for _, check in failed} == {"no-dev"}
    assert len(failed) == 4
    assert _failed(dist, "7.10.0.dev0", allow_dev=True) == set()


def test_incomplete_set(good: Path, tmp_path: Path) -> None:
    dist = copy_dist(good, tmp_path / "dist")
    wheel_of(dist, LIBRARIES).unlink()
    assert _failed(dist) == {(f"family {FAMILY}", "complete-set")}
    options = SmokeOptions(dist=dist, expect_version=RC, profile=PROFILE, install=False)
    (check,) = failures(smoke(options))
    assert "rocm-sdk-libraries-gfx120x-all" in check.detail


def test_wrong_expected_version(good: Path) -> None:
    failed = _failed(good, "7.10.0")
    assert {check for _, check in failed} == {"version"}
    assert len(failed) == 4


def test_build_takes_the_release_type(tmp_path: Path) -> None:
    out = tmp_path / "build"
    args = ("build", FAMILY, "--out", out, "-q", "--release-type", "nightly", "--date", "20251124")
    result = run_wheelyard(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    nightly = f"{load_profile(PROFILE).base_version}a20251124"
    assert _failed(out / "dist", nightly) == set()
    overridden = run_wheelyard(
        "build",
        FAMILY,
        "--out",
        tmp_path / "override",
        "-q",
        "--release-type",
        "rc",
        "--rc",
        "1",
        "--version",
        "7.10.0rc9",
    )
    assert overridden.returncode == 0, overridden.stderr
    assert (
        tmp_path
        / "override"
        / "dist"
        / "rocm_sdk_core-7.10.0rc9-py3-none-manylinux_2_28_x86_64.whl"
    ).is_file()
