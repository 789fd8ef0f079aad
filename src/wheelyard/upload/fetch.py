"""``fetch-artifacts``: download a run's artifact archives, verified, resumable, into one directory.

A run's archives sit directly under its prefix, named like TheRock's
(``blas_lib_gfx94X-dcgpu.tar.xz`` with ``.sha256sum`` beside). The listing is planned before
anything is downloaded: a key under the prefix that is not a clean relative path (``..``,
backslash, control characters) stops the command, since a listing is not trusted input; clean
nested keys (the run's ``python/`` tree) are not artifacts and are left alone. Each archive is
streamed to ``.NAME.part`` in the output directory, resumed with a ``Range`` request (pinned to
the listed ETag) when a part is there, checked against its ``.sha256sum`` and renamed into place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from wheelyard.errors import FetchError, UploadError
from wheelyard.upload.client import describe_error
from wheelyard.upload.layout import RunLocation, check_relative_key
from wheelyard.wheelfile import hash_file

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

GENERIC = "generic"
CHECKSUM_SUFFIX = ".sha256sum"
_ARCHIVE = re.compile(
    r"(?P<stem>[A-Za-z0-9][A-Za-z0-9.+-]*_[a-z]+_(?P<family>[A-Za-z0-9][A-Za-z0-9.-]*))"
    r"\.tar\.(?:xz|zst)"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_ATTEMPTS = 4
Outcome = Literal["downloaded", "resumed", "present"]


@dataclass(frozen=True, kw_only=True)
class ListedObject:
    key: str
    size: int
    etag: str


@dataclass(frozen=True, kw_only=True)
class RemoteArchive:
    name: str
    family: str
    key: str
    size: int
    etag: str
    checksum_key: str | None


@dataclass(frozen=True, kw_only=True)
class FetchPlan:
    location: RunLocation
    out: Path
    families: tuple[str, ...]
    archives: tuple[RemoteArchive, ...]

    @property
    def size(self) -> int:
        return sum(archive.size for archive in self.archives)


def plan_fetch(
    listing: Iterable[ListedObject], *, location: RunLocation, families: Sequence[str], out: Path
) -> FetchPlan:
    """Pick the archives of ``families`` and generic from a run's listing; refuse unsafe keys."""
    prefix = location.run_prefix
    hostile, archives, checksums = [], {}, set()
    for item in listing:
        if not item.key.startswith(prefix):
            continue
        relative = item.key.removeprefix(prefix)
        try:
            check_relative_key(relative)
        except UploadError:
            hostile.append(repr(item.key))
            continue
        match = _ARCHIVE.fullmatch(relative.removesuffix(CHECKSUM_SUFFIX))
        if "/" in relative or match is None:
            continue
        if relative.endswith(CHECKSUM_SUFFIX):
            checksums.add(relative.removesuffix(CHECKSUM_SUFFIX))
        elif match.group("family") in {GENERIC, *families}:
            archives[relative] = (item, match.group("family"))
    if hostile:
        raise FetchError(
            f"the listing of s3://{location.bucket}/{prefix} has keys that are not safe "
            "relative paths:\n" + "\n".join(f"  {key}" for key in sorted(hostile)),
            hint="nothing was downloaded; remove those objects or fetch from another run",
        )
    found = {family for _, family in archives.values()}
    absent = [family for family in (*families, GENERIC) if family not in found]
    if absent:
        raise FetchError(
            f"no artifact archives for {', '.join(absent)} under s3://{location.bucket}/{prefix}",
            hint="check --run-id, --platform, --family and --bucket",
        )
    return FetchPlan(
        location=location,
        out=out,
        families=tuple(families),
        archives=tuple(
            RemoteArchive(
                name=name,
                family=family,
                key=item.key,
                size=item.size,
                etag=item.etag,
                checksum_key=prefix + name + CHECKSUM_SUFFIX if name in checksums else None,
            )
            for name, (item, family) in sorted(archives.items())
        ),
    )


def list_run(client: S3Client, location: RunLocation) -> list[ListedObject]:
    """Every object under the run's prefix (the listing is what :func:`plan_fetch` checks)."""
    found = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.run_prefix
        )
        for page in pages:
            for entry in page.get("Contents", []):
                found.append(ListedObject(key=entry["Key"], size=entry["Size"], etag=entry["ETag"]))
    except (ClientError, BotoCoreError) as error:
        raise FetchError(
            f"cannot list s3://{location.bucket}/{location.run_prefix}: {describe_error(error)}",
            hint="check --bucket, --endpoint-url and the credentials",
        ) from None
    return found


def _expected_sha256(client: S3Client, bucket: str, archive: RemoteArchive) -> str | None:
    if archive.checksum_key is None:
        return None
    body = client.get_object(Bucket=bucket, Key=archive.checksum_key)["Body"].read(4096)
    words = body.decode("ascii", "replace").split()
    if not words or not _SHA256.fullmatch(words[0].lower()):
        raise FetchError(f"{archive.checksum_key}: not a sha256sum file", hint="re-upload it")
    return words[0].lower()


def _open_part(path: Path) -> int:
    """Open (create) ``path`` for appending, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o644)


def _download(
    client: S3Client,
    bucket: str,
    archive: RemoteArchive,
    part: Path,
    on_bytes: Callable[[int], None],
) -> bool:
    """Complete ``part`` from wherever it stops; True if it resumed a partial file."""
    resumed = False
    failure = "the object ended early"
    for attempt in range(_ATTEMPTS + 1):
        have = part.lstat().st_size if part.exists() else 0
        if have > archive.size:
            part.unlink()
            have = 0
        if have == archive.size:
            return resumed
        if attempt == _ATTEMPTS:
            break
        resumed = resumed or have > 0
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": archive.key, "IfMatch": archive.etag}
        if have:
            arguments["Range"] = f"bytes={have}-"
        handle = _open_part(part)
        try:
            stream = client.get_object(**arguments)["Body"]
            for chunk in stream.iter_chunks(_CHUNK):
                os.write(handle, chunk)
                on_bytes(len(chunk))
        except (BotoCoreError, OSError) as error:
            failure = describe_error(error)  # resume from what arrived
        finally:
            os.close(handle)
    raise FetchError(
        f"{archive.key}: incomplete after {_ATTEMPTS} attempts ({failure})",
        hint="run the same command again: it resumes from the partial download",
    )


def _write_checksum(out: Path, name: str, expected: str) -> None:
    """``NAME.sha256sum`` beside the archive, so ``wheelyard build`` checks it again."""
    temporary = out / f".{name}{CHECKSUM_SUFFIX}.part"
    temporary.unlink(missing_ok=True)
    temporary.write_text(f"{expected}  {name}\n", encoding="ascii")
    os.replace(temporary, out / (name + CHECKSUM_SUFFIX))  # noqa: PTH105 - atomic rename


def fetch_one(
    client: S3Client,
    bucket: str,
    archive: RemoteArchive,
    out: Path,
    on_bytes: Callable[[int], None],
) -> Outcome:
    """Download, verify and place one archive (and its ``.sha256sum``) in ``out``."""
    expected = _expected_sha256(client, bucket, archive)
    target = out / archive.name
    outcome: Outcome = "present"
    if (
        target.is_file()
        and not target.is_symlink()
        and target.stat().st_size == archive.size
        and (expected is None or hash_file(target).sha256 == expected)
    ):
        on_bytes(archive.size)
    else:
        part = out / f".{archive.name}.part"
        if part.is_symlink():
            part.unlink()
        resumed = _download(client, bucket, archive, part, on_bytes)
        actual = hash_file(part).sha256
        if expected is not None and actual != expected:
            part.unlink()
            if resumed:  # the kept part was not a prefix of this object: start over once
                return fetch_one(client, bucket, archive, out, on_bytes)
            raise FetchError(
                f"{archive.key}: sha256 {actual} does not match its .sha256sum ({expected})",
                hint="the object is corrupt in the bucket; re-upload it or rebuild the run",
            )
        os.replace(part, target)  # noqa: PTH105 - atomic rename into place
        outcome = "resumed" if resumed else "downloaded"
    if expected is not None:
        _write_checksum(out, archive.name, expected)
    return outcome


def fetch_archives(
    plan: FetchPlan, *, client: S3Client, jobs: int, on_bytes: Callable[[int], None]
) -> dict[str, Outcome]:
    """Fetch every planned archive, ``jobs`` at a time; returns the outcome per file name."""
    plan.out.mkdir(parents=True, exist_ok=True)
    bucket = plan.location.bucket

    def one(archive: RemoteArchive) -> Outcome:
        try:
            return fetch_one(client, bucket, archive, plan.out, on_bytes)
        except ClientError as error:
            raise FetchError(f"{archive.key}: {describe_error(error)}") from None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(one, plan.archives))
    return {archive.name: outcome for archive, outcome in zip(plan.archives, outcomes, strict=True)}
