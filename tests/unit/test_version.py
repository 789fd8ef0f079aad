from __future__ import annotations

import pytest

from wheelyard.errors import VersionError
from wheelyard.profile.version import compute


def test_default_is_dev0_of_base() -> None:
    assert compute(None, base_version="7.10.0") == "7.10.0.dev0"


def test_requested_is_normalised() -> None:
    assert compute("7.10.0-RC1", base_version="7.10.0") == "7.10.0rc1"


@pytest.mark.parametrize("bad", ["seven", "7.10.0+", "7..1", ""])
def test_invalid_version_is_refused(bad: str) -> None:
    with pytest.raises(VersionError, match="not a valid PEP 440"):
        compute(bad, base_version="7.10.0")


def test_base_version_must_be_plain() -> None:
    with pytest.raises(VersionError, match="plain X.Y.Z"):
        compute(None, base_version="7.10.0rc1")
