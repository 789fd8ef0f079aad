"""The one version of a build: chosen once, validated, normalised, pinned by the meta."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from wheelyard.errors import VersionError


def parse(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise VersionError(text, "not a valid PEP 440 version") from None


def compute(requested: str | None, *, base_version: str) -> str:
    """``--version`` if given, else the profile's base version as ``X.Y.Z.dev0``.

    The result is normalised (``7.10.0-rc1`` becomes ``7.10.0rc1``), so filenames, METADATA and
    the meta's pins all carry the same spelling.
    """
    if requested is not None:
        return str(parse(requested))
    base = parse(base_version)
    if base.is_prerelease or base.is_devrelease or base.local or base.is_postrelease:
        raise VersionError(base_version, "the profile's base_version must be a plain X.Y.Z")
    return f"{base.base_version}.dev0"
