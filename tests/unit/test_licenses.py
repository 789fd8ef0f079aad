"""Licenses (PEP 639): the profile's [licenses] table, the License-Expression and License-File
fields of METADATA, and which license files of the artifacts go into which wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packaging.metadata import Metadata as Parsed

from wheelyard.artifacts import Artifact, ArtifactName, StagedFile
from wheelyard.build.licenses import LicenseIndex, index_licenses, license_file_names
from wheelyard.build.meta import Metadata
from wheelyard.build.split import plan_split
from wheelyard.errors import ProfileError
from wheelyard.profile.definitions import load_profile
from wheelyard.wheelfile import FileEntry

PROFILE = Path(__file__).resolve().parents[2] / "packaging" / "rocm"
INFO = "rocm_sdk_core-7.10.0.dist-info"


def _metadata(license_files: tuple[str, ...]) -> bytes:
    return Metadata(
        name="rocm-sdk-core",
        version="7.10.0",
        summary="core",
        description="# core",
        requires_python=">=3.9",
        license="MIT AND Apache-2.0",
        license_files=license_files,
    ).render()


def test_metadata_declares_each_license_file_after_the_expression() -> None:
    files = ("LICENSE", "share/doc/hip/LICENSE.txt")
    text = _metadata(files)
    lines = text.decode().split("\n\n", 1)[0].splitlines()
    assert lines[0] == "Metadata-Version: 2.4"
    at = lines.index("License-Expression: MIT AND Apache-2.0")
    assert lines[at + 1 : at + 3] == [f"License-File: {f}" for f in files]
    parsed = Parsed.from_email(text, validate=True)
    assert parsed.license_expression == "MIT AND Apache-2.0"
    assert parsed.license_files == list(files)
    assert "License-File" not in _metadata(()).decode()


def test_rocm_profile_licenses() -> None:
    profile = load_profile(PROFILE)
    assert profile.license == "MIT"
    assert profile.licenses.file == PROFILE / "LICENSE"
    assert "the wheelyard ROCm profile authors" in (PROFILE / "LICENSE").read_text()
    assert profile.licenses.matches("share/doc/hip/LICENSE.txt")
    assert profile.licenses.matches("share/doc/rocm_sysdeps/COPYING")
    assert not profile.licenses.matches("share/doc/hip/README.md")
    assert not profile.licenses.matches("lib/LICENSE")
    assert all(p.license_expression is None for p in profile.packages)


def _profile_with(tmp_path: Path, old: str, new: str) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(PROFILE, target)
    path = target / "packages.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return target


def test_package_license_expression_overrides_and_is_canonical(tmp_path: Path) -> None:
    root = _profile_with(
        tmp_path, 'key = "core"\n', 'key = "core"\nlicense_expression = "mit or apache-2.0"\n'
    )
    profile = load_profile(root)
    assert profile.package("core").license_expression == "MIT OR Apache-2.0"
    assert profile.package("libraries").license_expression is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('expression = "MIT"', 'expression = "MIT-ish"', "[licenses]: 'expression' 'MIT-ish'"),
        ('key = "core"\n', 'key = "core"\nlicense_expression = "not one"\n', "package 'core'"),
        ("globs = [\n", "globs = [ 3,\n", "'globs' must be a list of strings"),
    ],
)
def test_bad_license_settings_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_profile(_profile_with(tmp_path, old, new))


def test_missing_profile_license_file_is_named(tmp_path: Path) -> None:
    root = _profile_with(tmp_path, 'file = "LICENSE"', 'file = "COPYRIGHT"')
    with pytest.raises(ProfileError, match="COPYRIGHT"):
        load_profile(root)


def _artifact(tmp_path: Path, name: str, files: dict[str, str]) -> Artifact:
    parsed = ArtifactName.parse(name)
    staged = []
    for rel, text in sorted(files.items()):
        source = tmp_path / name / rel
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
        staged.append(
            StagedFile(artifact=parsed, path=rel, source=source, kind="file", size=len(text))
        )
    return Artifact(name=parsed, root=tmp_path / name, files=tuple(staged))


def test_a_wheel_gets_the_licenses_of_the_artifacts_it_ships(tmp_path: Path) -> None:
    profile = load_profile(PROFILE)
    families = profile.families.resolve(("gfx120X-all", "gfx94X-dcgpu"))
    artifacts = [
        _artifact(tmp_path, "core-hip_lib_generic", {"lib/libamdhip64.so.7": "elf"}),
        _artifact(tmp_path, "core-hip_doc_generic", {"share/doc/hip/LICENSE.txt": "hip"}),
        # excluded (test component) but still the project's license
        _artifact(tmp_path, "rand_test_generic", {"share/doc/rocrand/COPYING": "rand"}),
        _artifact(tmp_path, "blas_doc_gfx120X-all", {"share/doc/rocblas/LICENSE.md": "b120"}),
        _artifact(tmp_path, "blas_doc_gfx94X-dcgpu", {"share/doc/rocblas/LICENSE.md": "b94"}),
        _artifact(tmp_path, "blas_dev_gfx94X-dcgpu", {"share/doc/rocblas/README.md": "readme"}),
    ]
    index = index_licenses(profile, plan_split(profile, families, artifacts))

    def shipped(*names: str) -> dict[str, str]:
        entries = index.entries(INFO, (ArtifactName.parse(n) for n in names))
        return {e.arcname: e.source.read_text() for e in entries if e.source is not None}

    own = {f"{INFO}/licenses/LICENSE": (PROFILE / "LICENSE").read_text()}
    assert shipped("core-hip_lib_generic") == {
        **own,
        f"{INFO}/licenses/share/doc/hip/LICENSE.txt": "hip",
    }
    assert shipped("blas_lib_gfx94X-dcgpu", "rand_lib_generic") == {
        **own,
        f"{INFO}/licenses/share/doc/rocblas/LICENSE.md": "b94",
        f"{INFO}/licenses/share/doc/rocrand/COPYING": "rand",
    }
    assert shipped() == own


def test_license_file_names_are_relative_to_the_licenses_directory() -> None:
    entries = [
        FileEntry(arcname=f"{INFO}/licenses/share/doc/hip/LICENSE.txt", data=b"x"),
        FileEntry(arcname=f"{INFO}/licenses/LICENSE", data=b"y"),
        FileEntry(arcname="_rocm_sdk_core/share/doc/hip/LICENSE.txt", data=b"x"),
    ]
    assert license_file_names(INFO, entries) == ("LICENSE", "share/doc/hip/LICENSE.txt")
    assert LicenseIndex(files={}, own=None).entries(INFO, ()) == ()
