"""Versions per release type: forms, ordering, promotion successors, publishability."""

from __future__ import annotations

import pytest
from packaging.version import Version

from wheelyard.errors import VersionError
from wheelyard.profile.version import (
    ReleaseSpec,
    check_successor,
    compute,
    is_publishable,
    release_version,
)


def _v(release_type: str, **kwargs: object) -> str:
    spec = ReleaseSpec(release_type=release_type, **kwargs)  # type: ignore[arg-type]
    return release_version("7.10.0", spec)


def test_each_release_type_has_its_form() -> None:
    assert _v("release") == "7.10.0"
    assert _v("rc", rc=2) == "7.10.0rc2"
    assert _v("nightly", date="20251124") == "7.10.0a20251124"
    assert _v("dev") == "7.10.0.dev0"
    assert _v("dev", git_sha="89553CE") == "7.10.0.dev0+89553ce"


def test_pep440_orders_nightly_rc_final_post() -> None:
    ordered = [
        _v("dev", git_sha="89553ce"),
        _v("nightly", date="20251124"),
        _v("nightly", date="20251125"),
        _v("rc", rc=1),
        _v("rc", rc=2),
        _v("release"),
        "7.10.0.post1",
        "7.10.0.post2",
    ]
    assert sorted(ordered, key=Version) == ordered
    assert len({Version(v) for v in ordered}) == len(ordered)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"release_type": "rc"}, "--rc N"),
        ({"release_type": "rc", "rc": 0}, "--rc N"),
        ({"release_type": "nightly"}, "YYYYMMDD"),
        ({"release_type": "nightly", "date": "2025-11-24"}, "YYYYMMDD"),
        ({"release_type": "nightly", "date": "20251340"}, "calendar date"),
        ({"release_type": "dev", "git_sha": "not-a-sha"}, "hexadecimal"),
    ],
)
def test_incomplete_or_bad_companions_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(VersionError, match=problem):
        release_version("7.10.0", ReleaseSpec(**kwargs))  # type: ignore[arg-type]


def test_version_overrides_release_type() -> None:
    spec = ReleaseSpec(release_type="rc", rc=3)
    assert compute(None, base_version="7.10.0", release=spec) == "7.10.0rc3"
    assert compute("7.10.0-rc4", base_version="7.10.0", release=spec) == "7.10.0rc4"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("7.10.0rc1", "7.10.0"),
        ("7.10.0a20251124", "7.10.0"),
        ("7.10.0rc2", "7.10.0.post1"),
        ("7.10.0", "7.10.0.post1"),
        ("7.10.0.post1", "7.10.0.post2"),
    ],
)
def test_valid_successors(old: str, new: str) -> None:
    assert check_successor(old, new) == new


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("7.10.0rc1", "7.10.0rc2", "final X.Y.Z"),
        ("7.10.0rc1", "7.11.0", "not a release of 7.10.0"),
        ("7.10.0rc1", "7.9.0", "not a release of 7.10.0"),
        ("7.10.0", "7.10.0", "not newer"),
        ("7.10.0.post2", "7.10.0.post1", "not newer"),
        ("7.10.0rc1", "7.10.0+local", "final X.Y.Z"),
        ("7.10.0rc1", "7.10.0.dev1", "final X.Y.Z"),
    ],
)
def test_invalid_successors_are_refused(old: str, new: str, problem: str) -> None:
    with pytest.raises(VersionError, match=problem):
        check_successor(old, new)


def test_dev_and_local_versions_are_not_publishable() -> None:
    assert is_publishable("7.10.0rc1")
    assert is_publishable("7.10.0a20251124")
    assert not is_publishable("7.10.0.dev0")
    assert not is_publishable("7.10.0.dev0+89553ce")
    assert not is_publishable("7.10.0+local")


def test_version_command_prints_each_release_type(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import PROFILE

    from wheelyard.__main__ import main
    from wheelyard.profile import load_profile

    base = load_profile(PROFILE).base_version
    cases = {
        ("--release-type", "release"): base,
        ("--release-type", "rc", "--rc", "2"): f"{base}rc2",
        ("--release-type", "nightly", "--date", "20251124"): f"{base}a20251124",
        ("--release-type", "dev", "--git-sha", "89553ce"): f"{base}.dev0+89553ce",
    }
    for args, expected in cases.items():
        assert main(["version", *args, "--profile", str(PROFILE)]) == 0
        assert capsys.readouterr().out.strip() == expected
    assert main(["version", "--release-type", "rc", "--profile", str(PROFILE)]) == 2
    assert "an rc needs --rc N" in capsys.readouterr().err
