"""Where a run lives in S3: bucket, keys, ``s3://`` URIs, public URLs and headers (pure functions).

A run's objects sit under ``{owner-repo/ for forks}{run_id}-{platform}/``: the build artifacts
directly below it, and the dist tree below its ``python/`` directory: a dist-relative path
``gfx120X-all/index.html`` becomes ``{run}/python/gfx120X-all/index.html``, so the relative links
of every index page keep resolving (``../rocm_sdk_core-….whl`` from a family page is
``{run}/python/rocm_sdk_core-….whl``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from wheelyard.errors import ProfileError, UploadError, UsageError
from wheelyard.profile import read_toml

Platform = Literal["linux", "windows"]
PLATFORMS: tuple[Platform, ...] = ("linux", "windows")
ReleaseType = Literal["ci", "dev", "nightly", "prerelease"]
RELEASE_TYPES: tuple[ReleaseType, ...] = ("ci", "dev", "nightly", "prerelease")
Phase = Literal["file", "metadata", "page", "flat-page"]
PHASES: tuple[Phase, ...] = ("file", "metadata", "page", "flat-page")
"""Upload order: package files, their ``.metadata`` sidecars, other pages, flat pages last."""

PROFILE_FILE = "packages.toml"
PYTHON_DIR = "python"
PAGE_NAMES = frozenset({"index.html", "index.json"})
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_CONTENT_TYPES = (
    (".whl", "application/zip"),
    (".metadata", "text/plain; charset=utf-8"),
    (".html", "text/html; charset=utf-8"),
    (".tar.gz", "application/gzip"),
    (".tar.xz", "application/x-xz"),
    (".tar.zst", "application/zstd"),
    (".sha256sum", "text/plain; charset=utf-8"),
)
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""Run ids, repository parts and group (family) names: nothing a path or an output could trip on."""
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def check_relative_key(relative: str) -> str:
    """``relative`` if it stays below the prefix it is joined to, else :class:`UploadError`."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or _UNSAFE.search(relative):
        problem = "is empty, absolute, or holds a backslash or control character"
    elif any(part in {"", ".", ".."} for part in parts):
        problem = "has an empty, '.' or '..' path segment"
    else:
        return relative
    raise UploadError(
        f"key {relative!r} {problem}: it would leave the run prefix",
        hint="rename the file in the dist tree; keys are paths relative to the dist root",
    )


def _check_name(value: str, argument: str) -> str:
    if not SAFE_NAME.fullmatch(value) or value.endswith("."):
        raise UsageError(
            argument, f"{value!r} may hold only letters, digits, '.', '_' and '-'", hint=None
        )
    return value


@dataclass(frozen=True, kw_only=True)
class BucketRules:
    """The profile's ``[upload]`` table: which bucket a run goes to."""

    main_repository: str
    ci_bucket: str
    fork_bucket: str
    release_buckets: tuple[tuple[str, str], ...]
    public_url: str = "https://{bucket}.s3.amazonaws.com"
    install_requirement: str = "rocm"

    def bucket_for(self, release_type: ReleaseType, *, fork: str | None) -> str:
        if release_type == "ci":
            return self.fork_bucket if fork else self.ci_bucket
        if fork:
            raise UploadError(
                f"{release_type} uploads come from {self.main_repository} only, not {fork}",
                hint="run the release workflow in the main repository, or pass --bucket",
            )
        return dict(self.release_buckets)[release_type]


def parse_bucket_rules(document: Mapping[str, Any], path: Path) -> BucketRules | None:
    """The ``[upload]`` table of a profile file, or None when it has none."""
    table = document.get("upload")
    if table is None:
        return None

    def text(source: Mapping[str, Any], key: str, where: str) -> str:
        value = source.get(key)
        if not isinstance(value, str) or not value:
            raise ProfileError(path, f"{where}: '{key}' must be a non-empty string")
        return value

    releases = table.get("release_buckets", {}) if isinstance(table, dict) else None
    if not isinstance(table, dict) or not isinstance(releases, dict):
        raise ProfileError(path, "[upload] and [upload.release_buckets] must be tables")
    rules = BucketRules(
        main_repository=text(table, "main_repository", "[upload]"),
        ci_bucket=text(table, "ci_bucket", "[upload]"),
        fork_bucket=text(table, "fork_bucket", "[upload]"),
        release_buckets=tuple(
            (kind, text(releases, kind, "[upload.release_buckets]"))
            for kind in RELEASE_TYPES
            if kind != "ci"
        ),
        public_url=str(table.get("public_url", BucketRules.public_url)),
        install_requirement=str(table.get("install_requirement", BucketRules.install_requirement)),
    )
    buckets = [rules.ci_bucket, rules.fork_bucket, *(b for _, b in rules.release_buckets)]
    for bucket in buckets:
        if not _BUCKET.fullmatch(bucket):
            raise ProfileError(path, f"[upload]: {bucket!r} is not a valid S3 bucket name")
    if "{bucket}" not in rules.public_url:
        raise ProfileError(path, "[upload]: public_url must contain {bucket}")
    return rules


def load_bucket_rules(profile: Path) -> BucketRules | None:
    """The ``[upload]`` table of ``profile/packages.toml`` (the one impure helper here)."""
    path = profile / PROFILE_FILE
    return parse_bucket_rules(read_toml(path), path)


def _strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``, so it can be printed."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True, kw_only=True)
class RunLocation:
    """One CI run's place in one bucket."""

    bucket: str
    fork: str | None
    """``owner/repo`` of the fork the run belongs to, or None for the main repository."""
    run_id: str
    platform: Platform
    base_url: str
    """Where the bucket's objects are served, without a trailing slash."""

    @property
    def run_prefix(self) -> str:
        owner_repo = f"{self.fork.replace('/', '-')}/" if self.fork else ""
        return f"{owner_repo}{self.run_id}-{self.platform}/"

    @property
    def python_prefix(self) -> str:
        return f"{self.run_prefix}{PYTHON_DIR}/"

    def key(self, relative: str) -> str:
        """The key of a dist-relative path (the dist root is the run's ``python/``)."""
        return self.python_prefix + check_relative_key(relative)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(key, safe='/')}"

    def find_links_url(self, group: str) -> str:
        """The group's flat page, addressed in full: S3 serves no index for a directory."""
        return self.url(self.key(f"{group}/index.html"))


def select_location(
    *,
    rules: BucketRules | None,
    run_id: str,
    platform: Platform,
    fork: str | None,
    release_type: ReleaseType = "ci",
    bucket: str | None = None,
    endpoint_url: str | None = None,
    public_url: str | None = None,
) -> RunLocation:
    """Bucket and prefix of a run: ``bucket`` overrides the profile's rules.

    URLs are ``public_url`` when given (a ``file:`` URL for a local directory), else
    ``ENDPOINT/BUCKET`` with an endpoint, else the profile's ``public_url`` template.
    """
    _check_name(run_id, "--run-id")
    if fork is not None:
        owner, _, repo = fork.partition("/")
        _check_name(owner, "GITHUB_REPOSITORY owner")
        _check_name(repo, "GITHUB_REPOSITORY name")
    if bucket is None:
        if rules is None:
            raise UsageError("--bucket", "required: the profile has no [upload] table")
        bucket = rules.bucket_for(release_type, fork=fork)
    if not _BUCKET.fullmatch(bucket):
        raise UsageError("--bucket", f"{bucket!r} is not a valid S3 bucket name")
    if public_url:
        base_url = public_url.rstrip("/")
    elif endpoint_url:
        base_url = f"{_strip_userinfo(endpoint_url)}/{bucket}"
    else:
        template = rules.public_url if rules else BucketRules.public_url
        base_url = template.format(bucket=bucket).rstrip("/")
    return RunLocation(
        bucket=bucket, fork=fork, run_id=run_id, platform=platform, base_url=base_url
    )


def is_page(relative: str) -> bool:
    return PurePosixPath(relative).name in PAGE_NAMES


def phase(relative: str) -> Phase:
    if relative.endswith(".metadata"):
        return "metadata"
    if not is_page(relative):
        return "file"
    return "flat-page" if relative.count("/") == 1 and relative.endswith(".html") else "page"


def content_type(relative: str) -> str:
    if PurePosixPath(relative).name == "index.json":
        return _SIMPLE_JSON
    for suffix, kind in _CONTENT_TYPES:
        if relative.endswith(suffix):
            return kind
    return "application/octet-stream"


def cache_control(relative: str) -> str:
    """Pages change between uploads and must be revalidated; package files never change."""
    return REVALIDATE if is_page(relative) else IMMUTABLE


def install_commands(requirement: str, find_links_url: str) -> tuple[tuple[str, str], ...]:
    """(installer, command) lines that install ``requirement`` from one flat page only."""
    return (
        ("pip", f'pip install --pre --no-index --find-links={find_links_url} "{requirement}"'),
        (
            "uv",
            f"uv pip install --prerelease=allow --no-index --find-links={find_links_url} "
            f'"{requirement}"',
        ),
    )
