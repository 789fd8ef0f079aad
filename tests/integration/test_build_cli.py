"""Bad input through the CLI: non-zero exit, one clear message naming the file or argument,
no traceback, and nothing left in --out."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shutil
import tarfile
from pathlib import Path

import pytest
from tests.conftest import PROFILE, SAMPLE, make_artifact, run_wheelyard

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    target = tmp_path / "artifacts"
    shutil.copytree(SAMPLE, target, symlinks=True)
    return target


def _tar_artifact(directory: Path, extra: list[tarfile.TarInfo] | None = None) -> Path:
    """Replace an artifact directory by a .tar.xz of its contents (plus hostile members)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    archive = directory.with_name(directory.name + ".tar.xz")
    archive.write_bytes(lzma.compress(buffer.getvalue()))
    shutil.rmtree(directory)
    return archive


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def _expect_failure(tmp_path: Path, *args: str | Path, needles: tuple[str, ...]) -> str:
    out = tmp_path / "out"
    result = run_wheelyard("build", *args, "--out", out)
    message = result.stderr
    assert result.returncode != 0, result.stdout + message
    assert "Traceback" not in message + result.stdout
    assert [line for line in message.splitlines() if line.startswith("error: ")], message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert not out.exists(), "a failed build must leave nothing in --out"
    assert not list(tmp_path.glob(".out.tmp-*")), "staging directory left behind"
    return message


def test_path_traversal_member(tmp_path: Path, artifacts: Path) -> None:
    archive = _tar_artifact(artifacts / "prim_dev_generic", [_member("../../evil")])
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=(archive.name, "outside the artifact"),
    )
    assert not (tmp_path / "evil").exists()


def test_absolute_member(tmp_path: Path, artifacts: Path) -> None:
    archive = _tar_artifact(artifacts / "prim_dev_generic", [_member("/tmp/wheelyard-evil")])
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=(archive.name, "outside the artifact"),
    )


def test_symlink_member_escaping(tmp_path: Path, artifacts: Path) -> None:
    archive = _tar_artifact(
        artifacts / "prim_dev_generic",
        [_member("x/stage/evil", tarfile.SYMTYPE, "../../../../etc")],
    )
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=(archive.name, "leaves the artifact"),
    )


def test_symlink_in_directory_escaping(tmp_path: Path, artifacts: Path) -> None:
    stage = next((artifacts / "prim_dev_generic").rglob("include"))
    (stage / "evil.h").symlink_to("../../../../../../etc/hostname")
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("evil.h", "leaves artifact prim_dev_generic"),
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_archive(tmp_path: Path, artifacts: Path, damage: str) -> None:
    archive = _tar_artifact(artifacts / "prim_dev_generic")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\0" * len(data))
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=(archive.name, "corrupt or truncated"),
    )


def test_checksum_mismatch(tmp_path: Path, artifacts: Path) -> None:
    archive = _tar_artifact(artifacts / "prim_dev_generic")
    wrong = hashlib.sha256(b"something else").hexdigest()
    archive.with_name(archive.name + ".sha256sum").write_text(f"{wrong}  {archive.name}\n")
    _expect_failure(
        tmp_path, "gfx120X-all", "--artifacts", artifacts, needles=(archive.name, "does not match")
    )


def test_malformed_artifact_name(tmp_path: Path, artifacts: Path) -> None:
    (artifacts / "prim_dev_generic").rename(artifacts / "prim-dev-generic")
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("prim-dev-generic", "malformed artifact name"),
    )


def test_missing_manifest(tmp_path: Path, artifacts: Path) -> None:
    (artifacts / "prim_dev_generic" / "artifact_manifest.txt").unlink()
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("prim_dev_generic", "artifact_manifest.txt is missing"),
    )


def test_manifest_root_escaping(tmp_path: Path, artifacts: Path) -> None:
    (artifacts / "prim_dev_generic" / "artifact_manifest.txt").write_text(
        "../core-hip_lib_generic\n"
    )
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("prim_dev_generic/artifact_manifest.txt", "leaves the artifact"),
    )


def test_unknown_family_suggests_near_misses(tmp_path: Path) -> None:
    message = _expect_failure(tmp_path, "gfx9000-all", needles=("gfx9000-all", "did you mean"))
    assert "gfx1151" not in message  # near misses only, not the whole list


def test_same_path_from_two_artifacts(tmp_path: Path, artifacts: Path) -> None:
    make_artifact(artifacts, "rand_dev_generic", {"include/rocprim/rocprim.hpp": b"clash"})
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("include/rocprim/rocprim.hpp", "prim_dev_generic", "rand_dev_generic"),
    )


def test_file_no_package_owns(tmp_path: Path, artifacts: Path) -> None:
    make_artifact(artifacts, "mystery_lib_generic", {"lib/libmystery.txt": b"?"})
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("mystery_lib_generic", "no package takes"),
    )


def test_unowned_file_in_taken_artifact(tmp_path: Path, artifacts: Path) -> None:
    make_artifact(artifacts, "mystery_dev_generic", {"include/m.h": b"?"})
    make_artifact(artifacts, "mystery_lib_generic", {"lib/m.txt": b"?"})
    # The profile's devel package takes named artifacts only, so both are reported.
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("mystery_dev_generic", "mystery_lib_generic"),
    )


def test_family_with_no_libraries(tmp_path: Path, artifacts: Path) -> None:
    # gfx950-dcgpu is a valid family, but the sample has no artifacts for it: TheRock shipped
    # an empty libraries wheel in this situation; wheelyard refuses.
    _expect_failure(
        tmp_path,
        "gfx950-dcgpu",
        "--artifacts",
        artifacts,
        needles=("rocm-sdk-libraries-gfx950-dcgpu", "nothing from gfx950-dcgpu artifacts"),
    )


def test_family_whose_libraries_are_only_data(tmp_path: Path, artifacts: Path) -> None:
    for path in (artifacts / "blas_lib_gfx120X-all").rglob("*.so*"):
        path.unlink()
    shutil.rmtree(artifacts / "rand_lib_generic")
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=("rocm-sdk-libraries-gfx120X-all", "nothing matches lib/*.so*"),
    )


def test_invalid_version(tmp_path: Path) -> None:
    _expect_failure(
        tmp_path, "gfx120X-all", "--version", "7.10-final!", needles=("7.10-final!", "PEP 440")
    )


def test_unreadable_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    shutil.copytree(PROFILE, profile)
    (profile / "packages.toml").write_text("[[package]\n")
    _expect_failure(
        tmp_path, "gfx120X-all", "--profile", profile, needles=("packages.toml", "invalid TOML")
    )


def test_missing_profile(tmp_path: Path) -> None:
    _expect_failure(
        tmp_path, "gfx120X-all", "--profile", tmp_path / "nope", needles=("nope", "not a directory")
    )


def test_missing_artifacts_directory(tmp_path: Path) -> None:
    _expect_failure(
        tmp_path, "gfx120X-all", "--artifacts", tmp_path / "none", needles=("none", "--artifacts")
    )


def test_bad_jobs(tmp_path: Path) -> None:
    _expect_failure(tmp_path, "gfx120X-all", "--jobs", "0", needles=("--jobs",))


def test_failed_build_keeps_previous_output(tmp_path: Path, artifacts: Path) -> None:
    out = tmp_path / "out"
    good = run_wheelyard("build", "gfx120X-all", "--artifacts", artifacts, "--out", out)
    assert good.returncode == 0, good.stderr
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    make_artifact(artifacts, "mystery_lib_generic", {"lib/libmystery.txt": b"?"})
    bad = run_wheelyard("build", "gfx120X-all", "--artifacts", artifacts, "--out", out)
    assert bad.returncode != 0
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before


def test_archives_build_like_directories(tmp_path: Path, artifacts: Path) -> None:
    plain = run_wheelyard("build", "gfx120X-all", "--artifacts", artifacts, "--out", tmp_path / "a")
    assert plain.returncode == 0, plain.stderr
    for name in ("core-hip_lib_generic", "blas_lib_gfx120X-all", "prim_dev_generic"):
        archive = _tar_artifact(artifacts / name)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        archive.with_name(archive.name + ".sha256sum").write_text(f"{digest}  {archive.name}\n")
    packed = run_wheelyard(
        "build", "gfx120X-all", "--artifacts", artifacts, "--out", tmp_path / "b"
    )
    assert packed.returncode == 0, packed.stderr
    assert "extracting archives: 100%" in packed.stderr
    a = (tmp_path / "a" / "build-manifest.json").read_text()
    b = (tmp_path / "b" / "build-manifest.json").read_text()
    assert a == b


def test_summary_is_printed(tmp_path: Path) -> None:
    result = run_wheelyard("build", "gfx120X-all", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    for needle in ("rocm_sdk_core-7.10.0.dev0", "sha256", "ELF dependency closure", "wrote"):
        assert needle in text
    assert (tmp_path / "out" / "closure-report.json").is_file()


def _library_needing(tmp_path: Path, artifacts: Path, needed: str) -> None:
    from tests.unit._elfbuild import compile_elf

    scratch = compile_elf(
        tmp_path / "scratch" / needed, "int ext(void) { return 1; }\n", soname=needed
    )
    stage = make_artifact(artifacts, "rpp_lib_gfx120X-all", {}) / "stage" / "lib"
    compile_elf(
        stage / "librpp.so.1",
        "int ext(void);\nint rpp(void) { return ext(); }\n",
        soname="librpp.so.1",
        needs=[scratch],
    )


def test_needed_library_found_nowhere(tmp_path: Path, artifacts: Path) -> None:
    _library_needing(tmp_path, artifacts, "libnotthere.so.1")
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--artifacts",
        artifacts,
        needles=(
            "rocm-sdk-libraries-gfx120X-all/lib/librpp.so.1",
            "libnotthere.so.1",
            "allow_external",
        ),
    )


def test_allowed_external_library_is_reported(tmp_path: Path, artifacts: Path) -> None:
    _library_needing(tmp_path, artifacts, "libnuma.so.1")  # allowed in the ROCm profile
    out = tmp_path / "out"
    result = run_wheelyard("build", "gfx120X-all", "--artifacts", artifacts, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "external libraries expected on the system: libnuma.so.1" in result.stderr
    report = json.loads((out / "closure-report.json").read_text())
    assert report["external"] == ["libnuma.so.1"]
    assert report["totals"]["external"] == 1


def _profile_with(tmp_path: Path, old: str, new: str) -> Path:
    profile = tmp_path / "profile"
    shutil.copytree(PROFILE, profile)
    text = (profile / "packages.toml").read_text()
    assert old in text
    (profile / "packages.toml").write_text(text.replace(old, new, 1))
    return profile


def test_dangling_symlink_is_an_error_when_the_profile_says_so(
    tmp_path: Path, artifacts: Path
) -> None:
    # The committed sample has no dangling link (a --strict build of it must pass): add one.
    link = artifacts / "core-hip_run_generic/core/hipcc/stage/bin/hipcc.pl"
    link.parent.mkdir(parents=True)
    link.symlink_to("../share/hip/missing-hipcc.pl")
    profile = _profile_with(tmp_path, 'dangling_symlinks = "warn"', 'dangling_symlinks = "error"')
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--profile",
        profile,
        "--artifacts",
        artifacts,
        needles=("dangling symlinks", "bin/hipcc.pl -> ../share/hip/missing-hipcc.pl"),
    )


def test_two_wheels_installing_one_path_is_refused(tmp_path: Path) -> None:
    # Uninstalling one of them would delete the other's file (verified on TheRock).
    profile = _profile_with(
        tmp_path,
        'install_dir = "_rocm_sdk_libraries_{family_ident}"',
        'install_dir = "_rocm_sdk_core"',
    )
    _expect_failure(
        tmp_path,
        "gfx120X-all",
        "--profile",
        profile,
        needles=(
            "more than one distribution",
            "_rocm_sdk_core/__init__.py",
            "rocm-sdk-core",
            "rocm-sdk-libraries-gfx120X-all",
        ),
    )
