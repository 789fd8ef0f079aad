"""``publish --to-bucket``: copy a tested run's set into a release bucket prefix, then re-index it.

Everything is read and checked before anything is written. The run's files are what its own
JSON pages list (``<family>/simple/**/index.json`` below ``{run}/python/``), the release
prefix's files what its pages list. Each file and ``.metadata`` sidecar is copied server-side
(CopyObject; boto3's multipart copy from 64 MiB) with its headers and ``sha256`` metadata, and
created only if absent: a key that already holds the same sha256 is skipped, any other content
stops the run before the first copy. The prefix's pages are then rendered from both lists
(merge mode, relative links) and the changed ones written, flat pages last.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from wheelyard.errors import ReleaseError, UploadError, UsageError, format_list
from wheelyard.index import (
    JSON_CONTENT_TYPE,
    ExistingIndex,
    LandingInfo,
    Page,
    merge_namespaces,
    namespaces_from,
    plan_pages,
    read_index_dir,
)
from wheelyard.profile import is_publishable
from wheelyard.upload import check_relative_key, describe_error, make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Action = Literal["copy", "skip", "conflict"]
PageAction = Literal["write", "unchanged"]
SHA256 = "sha256"
MULTIPART_THRESHOLD = 64 << 20
_MAX_PAGE = 64 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CONDITIONAL = ("CopyObject", "CompleteMultipartUpload")


@dataclass(frozen=True, kw_only=True)
class BucketPromotion:
    """Where a run's set is read from and where it goes; built once at the CLI edge."""

    source_bucket: str
    source_root: str
    """The run's ``python/`` prefix, ending in ``/``."""
    target_bucket: str
    target_root: str
    """The release prefix ending in ``/``, or ``""`` for the bucket's root."""
    groups: tuple[str, ...] = ()
    """Families to copy; empty means every family the run indexed."""
    base_url: str | None = None
    """Public URL of the release prefix, for the landing page."""
    endpoint_url: str | None = None
    jobs: int = 8


@dataclass(frozen=True, kw_only=True)
class Stored:
    size: int
    sha256: str | None
    content_type: str
    cache_control: str | None


@dataclass(frozen=True, kw_only=True)
class PlannedCopy:
    relative: str
    """Below both roots: a run's ``python/`` tree and a release prefix share one layout."""
    source: Stored
    target_sha256: str | None
    action: Action


@dataclass(frozen=True, kw_only=True)
class BucketPlan:
    promotion: BucketPromotion
    copies: tuple[PlannedCopy, ...]
    """Package files first, then their sidecars."""
    pages: tuple[tuple[Page, PageAction], ...]
    """In write order: simple pages, landing page, flat pages last."""


def release_prefix(text: str) -> str:
    """``--prefix`` as a key prefix: ``""`` or ``a/b/``; no empty, ``.`` or ``..`` segment."""
    stripped = text.strip("/")
    if not stripped:
        return ""
    try:
        return check_relative_key(stripped) + "/"
    except UploadError:
        raise UsageError(
            "--prefix", f"{text!r} must be a plain key prefix: no '.', '..' or empty segment"
        ) from None


def _fail(what: str, error: BaseException) -> ReleaseError:
    return ReleaseError(
        f"{what}: {describe_error(error)}",
        hint="check the bucket names, --endpoint-url and that the credentials may read, list "
        "and write them",
    )


def _head(client: S3Client, bucket: str, key: str) -> Stored | None:
    try:
        reply = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in _MISSING:
            return None
        raise _fail(f"cannot read s3://{bucket}/{key}", error) from None
    except BotoCoreError as error:
        raise _fail(f"cannot read s3://{bucket}/{key}", error) from None
    return Stored(
        size=int(reply["ContentLength"]),
        sha256=reply.get("Metadata", {}).get(SHA256),
        content_type=reply.get("ContentType", "application/octet-stream"),
        cache_control=reply.get("CacheControl"),
    )


def _head_all(
    client: S3Client, bucket: str, keys: Sequence[str], jobs: int
) -> dict[str, Stored | None]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip(keys, pool.map(lambda key: _head(client, bucket, key), keys), strict=True))


def _page_keys(client: S3Client, bucket: str, root: str, groups: Sequence[str]) -> list[str]:
    """Root-relative paths of the JSON simple pages below ``root`` (of ``groups`` if given)."""
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
            for entry in page.get("Contents", []):
                parts = entry["Key"][len(root) :].split("/")
                pages = len(parts) in (3, 4) and parts[1] == "simple" and parts[-1] == "index.json"
                if pages and (not groups or parts[0] in groups):
                    found.append(check_relative_key("/".join(parts)))
    except (ClientError, BotoCoreError) as error:
        raise _fail(f"cannot list s3://{bucket}/{root}", error) from None
    return sorted(found)


def read_bucket_index(
    client: S3Client, bucket: str, root: str, groups: Sequence[str], scratch: Path
) -> ExistingIndex | None:
    """What the JSON pages below ``root`` list (``None`` without pages), read by the index
    module's own reader from a scratch copy of the pages; locations are relative to ``root``."""
    relatives = _page_keys(client, bucket, root, groups)
    if not relatives:
        return None
    for relative in relatives:
        try:
            body = client.get_object(Bucket=bucket, Key=root + relative)["Body"].read(_MAX_PAGE + 1)
        except (ClientError, BotoCoreError) as error:
            raise _fail(f"cannot read s3://{bucket}/{root}{relative}", error) from None
        if len(body) > _MAX_PAGE:
            raise ReleaseError(f"s3://{bucket}/{root}{relative}: larger than 64 MiB")
        (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
        (scratch / relative).write_bytes(body)
    return replace(read_index_dir(scratch), source=f"s3://{bucket}/{root}")


def _run_files(run: ExistingIndex) -> dict[str, str]:
    """sha256 of every package file and sidecar the run lists, by root-relative path."""
    files: dict[str, str] = {}
    refused = []
    for entry in (entry for entries in run.namespaces.values() for entry in entries):
        if entry.is_remote:
            refused.append(f"{entry.filename}: linked from another index ({entry.location})")
        elif not is_publishable(entry.version):
            refused.append(f"{entry.filename}: {entry.version} is a dev or local version")
        files[entry.location] = entry.sha256
        if entry.metadata_sha256 is not None:
            files[f"{entry.location}.metadata"] = entry.metadata_sha256
    if refused:
        raise ReleaseError(
            f"{run.source} holds files a release never takes:\n" + format_list(refused),
            hint="build with --release-type release, rc or nightly, index without "
            "--merge-from URL, and upload that run",
        )
    return dict(sorted(files.items(), key=lambda item: (item[0].endswith(".metadata"), item[0])))


def _plan_copies(
    client: S3Client, promotion: BucketPromotion, files: Mapping[str, str]
) -> list[PlannedCopy]:
    """Each file's source read back (it must hold the listed sha256) and its target state."""
    p = promotion
    sources = _head_all(client, p.source_bucket, [p.source_root + r for r in files], p.jobs)
    targets = _head_all(client, p.target_bucket, [p.target_root + r for r in files], p.jobs)
    broken, copies = [], []
    for relative, sha256 in files.items():
        source = sources[p.source_root + relative]
        if source is None or source.sha256 != sha256:
            seen = "absent" if source is None else f"sha256 {source.sha256}"
            broken.append(
                f"s3://{p.source_bucket}/{p.source_root}{relative}: {seen}, "
                f"its index lists {sha256}"
            )
            continue
        target = targets[p.target_root + relative]
        action: Action = "copy" if target is None else "skip"
        if target is not None and (target.sha256 != sha256 or target.size != source.size):
            action = "conflict"
        copies.append(
            PlannedCopy(
                relative=relative,
                source=source,
                target_sha256=target.sha256 if target else None,
                action=action,
            )
        )
    if broken:
        raise ReleaseError(
            "the run does not hold what its index lists:\n" + format_list(broken),
            hint="upload the run again (`wheelyard upload`) and re-run; nothing was copied",
        )
    return copies


def _check_conflicts(promotion: BucketPromotion, copies: Sequence[PlannedCopy]) -> None:
    rows = [
        f"s3://{promotion.target_bucket}/{promotion.target_root}{c.relative}: holds sha256 "
        f"{c.target_sha256 or '(none)'}, the run's is {c.source.sha256}"
        for c in copies
        if c.action == "conflict"
    ]
    if rows:
        raise ReleaseError(
            "the release prefix already holds other bytes under these keys; nothing was "
            "copied:\n" + format_list(rows),
            hint="a published file never changes: promote to X.Y.Z.postN, upload and publish that",
        )


def plan_promotion(promotion: BucketPromotion, client: S3Client) -> BucketPlan:
    """Read both indexes and every key involved; check everything; render the new pages."""
    with tempfile.TemporaryDirectory(prefix="wheelyard-to-bucket-") as scratch:
        run = read_bucket_index(
            client,
            promotion.source_bucket,
            promotion.source_root,
            promotion.groups,
            Path(scratch, "run"),
        )
        release = read_bucket_index(
            client, promotion.target_bucket, promotion.target_root, (), Path(scratch, "release")
        )
    where = f"s3://{promotion.source_bucket}/{promotion.source_root}"
    missing = sorted(set(promotion.groups) - set(run.namespaces if run else ()))
    if run is None or missing:
        raise ReleaseError(
            f"{where} has no indexed family {', '.join(missing) or '(none at all)'}",
            hint="check --run-id, --platform, --from-bucket and --group",
        )
    copies = _plan_copies(client, promotion, _run_files(run))
    _check_conflicts(promotion, copies)
    merged = merge_namespaces(run.namespaces, [release] if release else [])
    namespaces = namespaces_from({name: ns.files for name, ns in merged.items()})
    pages = plan_pages(namespaces, landing=LandingInfo(base_url=promotion.base_url))
    root = promotion.target_root
    stored = _head_all(
        client, promotion.target_bucket, [root + p.path for p in pages], promotion.jobs
    )
    planned: list[tuple[Page, PageAction]] = []
    for page in pages:
        found = stored[root + page.path]
        same = found is not None and found.sha256 == hashlib.sha256(page.data).hexdigest()
        planned.append((page, "unchanged" if same else "write"))
    return BucketPlan(promotion=promotion, copies=tuple(copies), pages=tuple(planned))


class _IfAbsent:
    """Adds ``If-None-Match: *`` to the copies' CopyObject/CompleteMultipartUpload calls, so a
    key written by someone else since it was read is never replaced (S3 answers 412)."""

    def __init__(self, client: S3Client, keys: Sequence[str]) -> None:
        self._client, self._keys = client, frozenset(keys)
        for operation in _CONDITIONAL:
            client.meta.events.register(f"before-parameter-build.s3.{operation}", self._add)

    def _add(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Key") in self._keys:
            params["IfNoneMatch"] = "*"

    def close(self) -> None:
        for operation in _CONDITIONAL:
            self._client.meta.events.unregister(f"before-parameter-build.s3.{operation}", self._add)


def _copy_one(client: S3Client, promotion: BucketPromotion, item: PlannedCopy) -> str | None:
    """Copy one object server-side with its headers; ``None`` when done, else the problem."""
    from boto3.s3.transfer import TransferConfig  # boto3 only when something is copied

    p, source = promotion, item.source
    extra = {
        "MetadataDirective": "REPLACE",
        "Metadata": {SHA256: str(source.sha256)},
        "ContentType": source.content_type,
        **({"CacheControl": source.cache_control} if source.cache_control else {}),
    }
    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4)
    try:
        client.copy(
            {"Bucket": p.source_bucket, "Key": p.source_root + item.relative},
            p.target_bucket,
            p.target_root + item.relative,
            ExtraArgs=extra,
            Config=config,
        )
        failure = ""
    except (ClientError, BotoCoreError) as error:
        failure = describe_error(error)
    stored = _head(client, p.target_bucket, p.target_root + item.relative)
    if stored is not None and stored.sha256 == source.sha256 and stored.size == source.size:
        return None  # copied, or a retried copy met its own first attempt (412)
    seen = "absent" if stored is None else f"sha256 {stored.sha256}, {stored.size} bytes"
    return f"s3://{p.target_bucket}/{p.target_root}{item.relative}: {failure or seen}"


def apply_promotion(plan: BucketPlan, client: S3Client, *, on_done: Callable[[str], None]) -> None:
    """Copy what is missing (files, then sidecars), read each back, then write changed pages."""
    p = plan.promotion
    copies = [item for item in plan.copies if item.action == "copy"]
    guard = _IfAbsent(client, [p.target_root + item.relative for item in copies])
    try:
        for sidecars in (False, True):
            batch = [item for item in copies if item.relative.endswith(".metadata") == sidecars]
            with ThreadPoolExecutor(max_workers=p.jobs) as pool:
                problems = [x for x in pool.map(lambda i: _copy_one(client, p, i), batch) if x]
            if problems:
                raise ReleaseError(
                    "copies failed or read back wrong; no page was written:\n"
                    + format_list(problems),
                    hint="run the same command again: what is already there is skipped",
                )
            for item in batch:
                on_done(item.relative)
    finally:
        guard.close()
    for page, action in plan.pages:
        if action == "unchanged":
            continue
        json_page = page.path.endswith(".json")
        try:
            client.put_object(
                Bucket=p.target_bucket,
                Key=p.target_root + page.path,
                Body=page.data,
                ContentType=JSON_CONTENT_TYPE if json_page else "text/html; charset=utf-8",
                CacheControl="no-cache",
                Metadata={SHA256: hashlib.sha256(page.data).hexdigest()},
            )
        except (ClientError, BotoCoreError) as error:
            where = f"cannot write s3://{p.target_bucket}/{p.target_root}{page.path}"
            raise _fail(where, error) from None
        on_done(page.path)


def promote_to_bucket(
    promotion: BucketPromotion,
    *,
    execute: bool,
    client: S3Client | None = None,
    on_done: Callable[[str], None] = lambda relative: None,
) -> BucketPlan:
    """Plan (reads only); with ``execute`` carry the plan out. Returns the plan."""
    if client is None:
        client = make_client(
            endpoint_url=promotion.endpoint_url, max_attempts=8, pool=promotion.jobs * 2 + 2
        )
    plan = plan_promotion(promotion, client)
    if execute:
        apply_promotion(plan, client, on_done=on_done)
    return plan
