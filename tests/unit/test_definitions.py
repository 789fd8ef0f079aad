from __future__ import annotations

import shutil
from pathlib import Path

import packaging
import pytest

from wheelyard.errors import ProfileError
from wheelyard.profile.definitions import glob_match, load_profile

PROFILE = Path(__file__).resolve().parents[2] / "packaging" / "rocm"


def test_packaging_library_is_not_shadowed_by_the_profile_folder() -> None:
    # packaging/ in the repo is data; the import must find the PyPA library in site-packages.
    assert "site-packages" in Path(packaging.__file__).parts
    assert not (PROFILE.parent / "__init__.py").exists()


def test_rocm_profile_loads() -> None:
    profile = load_profile(PROFILE)
    keys = [p.key for p in profile.packages]
    assert keys == ["core", "libraries", "profiler", "devel"]
    libraries = profile.package("libraries")
    family = profile.families.get("gfx120X-all")
    assert libraries.dist_name(family) == "rocm-sdk-libraries-gfx120X-all"
    assert libraries.module(family) == "_rocm_sdk_libraries_gfx120X_all"
    assert profile.min_glibc == (2, 28)
    assert profile.append_min_size == 0
    assert profile.devel_package() is not None
    core_artifacts = {a for rule in profile.package("core").takes for a in rule.artifacts}
    for name in ("core-hip", "core-runtime", "sysdeps", "amd-llvm", "rocprofiler-sdk"):
        assert name in core_artifacts


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("lib/*.so*", "lib/librocblas.so.5", True),
        ("lib/*.so*", "lib/rocblas/library/x.so", False),
        ("**/__pycache__/**", "lib/x/__pycache__/a.pyc", True),
        ("**/*.pyc", "a.pyc", True),
        ("bin/?", "bin/a", True),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def _copy_profile(tmp_path: Path) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(PROFILE, target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'scope = "generic"\ninstall_dir = "_rocm_sdk_core"',
            'scope = "nowhere"\ninstall_dir = "x"',
            "scope must be",
        ),
        (
            'requires = ["core"]\nsummary = "ROCm SDK math',
            'requires = ["nothing"]\nsummary = "x',
            "requires unknown packages",
        ),
        ('components = ["lib", "run"]', 'components = ["lib", "bogus"]', "components must be"),
        ('min_glibc = "2.28"', 'min_glibc = "3.1"', "min_glibc"),
        ("append_runpath_min_mib = 0", "append_runpath_min_mib = -1", "whole number of MiB"),
    ],
)
def test_invalid_profile_names_the_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    profile = _copy_profile(tmp_path)
    text = (profile / "packages.toml").read_text()
    assert old in text
    (profile / "packages.toml").write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(profile)
    assert "packages.toml" in str(info.value)


def test_missing_profile_dir(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a directory"):
        load_profile(tmp_path / "nope")


def test_unreadable_packages_toml(tmp_path: Path) -> None:
    profile = _copy_profile(tmp_path)
    (profile / "packages.toml").write_text("[profile\n")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_profile(profile)
