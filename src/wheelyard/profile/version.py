"""The one version of a build: chosen once per release type, validated, normalised, pinned.

Release types (docs/release.md): ``release`` X.Y.Z, ``rc`` X.Y.ZrcN, ``nightly`` X.Y.ZaYYYYMMDD,
``dev`` X.Y.Z.dev0+SHA (X.Y.Z.dev0 without a sha). PEP 440 orders them
nightly < rc < final < final.postN; dev sorts before all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as Date
from typing import Literal, get_args

from packaging.version import InvalidVersion, Version

from wheelyard.errors import VersionError

ReleaseType = Literal["release", "rc", "nightly", "dev"]
RELEASE_TYPES: tuple[str, ...] = get_args(ReleaseType)
_SHA = re.compile(r"[0-9a-f]{7,40}")
_DATE = re.compile(r"[0-9]{8}")


@dataclass(frozen=True, kw_only=True)
class ReleaseSpec:
    """``--release-type`` and its companions, as given on the command line."""

    release_type: ReleaseType
    rc: int | None = None
    date: str | None = None  # YYYYMMDD
    git_sha: str | None = None


def parse(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise VersionError(text, "not a valid PEP 440 version") from None


def _base(base_version: str) -> str:
    base = parse(base_version)
    if base.is_prerelease or base.is_devrelease or base.local or base.is_postrelease:
        raise VersionError(base_version, "the profile's base_version must be a plain X.Y.Z")
    return base.base_version


def _checked_date(text: str | None) -> str:
    if text is None or not _DATE.fullmatch(text):
        raise VersionError(f"a{text}", "a nightly needs --date YYYYMMDD (eight digits)")
    try:
        Date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise VersionError(f"a{text}", f"{text} is not a calendar date") from None
    return text


def release_version(base_version: str, spec: ReleaseSpec) -> str:
    """The version of ``spec.release_type`` made from the profile's plain ``X.Y.Z``."""
    base = _base(base_version)
    if spec.release_type == "release":
        return base
    if spec.release_type == "rc":
        if spec.rc is None or spec.rc < 1:
            raise VersionError(f"{base}rcN", "an rc needs --rc N with N >= 1")
        return f"{base}rc{spec.rc}"
    if spec.release_type == "nightly":
        return f"{base}a{_checked_date(spec.date)}"
    if spec.git_sha is None:
        return f"{base}.dev0"
    sha = spec.git_sha.lower()
    if not _SHA.fullmatch(sha):
        raise VersionError(
            f"{base}.dev0+{spec.git_sha}", "--git-sha must be 7 to 40 hexadecimal digits"
        )
    return f"{base}.dev0+{sha}"


def compute(requested: str | None, *, base_version: str, release: ReleaseSpec | None = None) -> str:
    """``--version`` if given, else the version of ``release``, else ``X.Y.Z.dev0``.

    The result is normalised (``7.10.0-rc1`` becomes ``7.10.0rc1``), so filenames, METADATA and
    the meta's pins all carry the same spelling.
    """
    if requested is not None:
        return str(parse(requested))
    return release_version(base_version, release or ReleaseSpec(release_type="dev"))


def check_successor(old: str, new: str) -> str:
    """``new`` normalised if it may replace ``old`` in a promotion, else a VersionError.

    A successor is a final ``X.Y.Z`` or ``X.Y.Z.postN`` of the same ``X.Y.Z``, newer than ``old``,
    with no dev or local part.
    """
    before, after = parse(old), parse(new)
    if after.is_prerelease or after.is_devrelease or after.local:
        raise VersionError(new, "a promotion target must be a final X.Y.Z or X.Y.Z.postN")
    if before.release != after.release or after.epoch != before.epoch:
        raise VersionError(
            new,
            f"is not a release of {before.base_version} (the set is {old})",
            hint=f"promote to {before.base_version} or {before.base_version}.postN",
        )
    if after <= before:
        raise VersionError(new, f"is not newer than the set's version {old}")
    return str(after)


def is_publishable(version: str) -> bool:
    """False for versions PyPI-style indexes must never receive: dev or local."""
    parsed = parse(version)
    return not parsed.is_devrelease and parsed.local is None
