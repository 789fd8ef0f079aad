"""The S3 backend: boto3 behind an injected client, conditional puts, concurrent multipart.

Package files are created with ``If-None-Match: *`` (S3 answers 412 when the key exists), so a
published file is never replaced even by a concurrent run. boto3's transfer manager does the
concurrency and multipart; the condition is added to its ``PutObject`` and
``CompleteMultipartUpload`` calls by a botocore parameter hook, for immutable keys only.
When a transfer fails for any reason (including a retried request whose first attempt did
succeed, which then meets its own 412), the key is read back: the same size and sha256 mean
the object is there, anything else is an error naming the key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.subscribers import BaseSubscriber

from wheelyard.errors import UploadError
from wheelyard.upload.backend import (
    Destination,
    Outcome,
    StoredObject,
    conflict_error,
)
from wheelyard.upload.client import CREDENTIALS_HINT, describe_error, make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from s3transfer.futures import TransferFuture

    from wheelyard.upload.plan import PlannedObject

SHA256_METADATA = "sha256"
_MISSING = {"404", "NoSuchKey", "NotFound"}


class _Progress(BaseSubscriber):
    def __init__(self, on_bytes: Callable[[int], None]) -> None:
        self._on_bytes = on_bytes

    def on_progress(self, future: TransferFuture, bytes_transferred: int, **kwargs: Any) -> None:
        self._on_bytes(bytes_transferred)


class S3Backend:
    """One bucket through an injected boto3 S3 client."""

    def __init__(self, *, client: S3Client, bucket: str, destination: Destination) -> None:
        self._client = client
        self._bucket = bucket
        self._destination = destination
        self._conditional: set[str] = set()
        self._lock = threading.Lock()
        events = client.meta.events
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"before-parameter-build.s3.{operation}", self._add_condition)

    @classmethod
    def create(cls, destination: Destination) -> S3Backend:
        client = make_client(
            endpoint_url=destination.endpoint_url,
            max_attempts=destination.max_attempts,
            pool=destination.jobs * 2 + 2,
        )
        return cls(client=client, bucket=destination.bucket, destination=destination)

    def _add_condition(self, params: dict[str, Any], **kwargs: Any) -> None:
        with self._lock:
            conditional = params.get("Key") in self._conditional
        if conditional:
            params["IfNoneMatch"] = "*"

    def describe(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def _head(self, key: str) -> StoredObject | None:
        try:
            reply = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                return None
            raise UploadError(
                f"cannot read {self.describe(key)}: {describe_error(error)}",
                hint="check the bucket name and that the credentials may read and list it",
            ) from None
        except BotoCoreError as error:
            raise UploadError(
                f"cannot read {self.describe(key)}: {describe_error(error)}",
                hint=CREDENTIALS_HINT
                if isinstance(error, NoCredentialsError)
                else "check --endpoint-url and the network",
            ) from None
        sha256 = reply.get("Metadata", {}).get(SHA256_METADATA)
        return StoredObject(size=int(reply["ContentLength"]), sha256=sha256)

    def stat(self, keys: Sequence[str]) -> dict[str, StoredObject | None]:
        with ThreadPoolExecutor(max_workers=self._destination.jobs) as pool:
            return dict(zip(keys, pool.map(self._head, keys), strict=True))

    def put(
        self, objects: Sequence[PlannedObject], *, on_bytes: Callable[[int], None]
    ) -> dict[str, Outcome]:
        if not objects:
            return {}
        with self._lock:
            self._conditional.update(item.key for item in objects if item.immutable)
        config = TransferConfig(
            multipart_threshold=self._destination.multipart_threshold,
            multipart_chunksize=self._destination.multipart_chunksize,
            max_concurrency=self._destination.jobs,
            preferred_transfer_client="classic",
        )
        manager = create_transfer_manager(self._client, config)
        subscriber = _Progress(on_bytes)
        try:
            futures = [
                (
                    item,
                    manager.upload(
                        str(item.source),
                        self._bucket,
                        item.key,
                        extra_args={
                            "ContentType": item.content_type,
                            "CacheControl": item.cache_control,
                            "Metadata": {SHA256_METADATA: item.sha256},
                        },
                        subscribers=[subscriber],
                    ),
                )
                for item in objects
            ]
            outcomes = self._settle(futures)
        except BaseException:
            manager.shutdown(cancel=True)  # Ctrl-C or a failed batch: stop what is queued
            raise
        manager.shutdown()
        return outcomes

    def _settle(
        self, futures: Sequence[tuple[PlannedObject, TransferFuture]]
    ) -> dict[str, Outcome]:
        """Wait for every transfer; a failed one counts if the key now holds our bytes."""
        outcomes: dict[str, Outcome] = {}
        conflicts = []
        failures = []
        for item, future in futures:
            try:
                future.result()
                outcomes[item.key] = "uploaded"
                continue
            except (ClientError, BotoCoreError, OSError) as error:
                failure = error
            stored = self._head(item.key)
            if stored is not None and stored.holds(item):
                outcomes[item.key] = "present"
            elif stored is not None and item.immutable:
                conflicts.append((self.describe(item.key), stored, item))
            else:
                failures.append(f"{self.describe(item.key)}: {describe_error(failure)}")
        if conflicts:
            raise conflict_error(conflicts)
        if failures:
            raise UploadError(
                f"{len(failures)} of {len(futures)} transfers failed:\n" + "\n".join(failures),
                hint="the store kept failing after every retry. Flat index pages are written "
                "only after everything else is in place, so nothing half-uploaded is listed; "
                "run the same command again: what is already there is skipped",
            )
        return outcomes

    def close(self) -> None:
        events = self._client.meta.events
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.unregister(f"before-parameter-build.s3.{operation}", self._add_condition)
