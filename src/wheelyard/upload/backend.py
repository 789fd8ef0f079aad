"""Where uploads go: the backend protocol, shared by S3 and a local directory, and its registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from wheelyard.errors import UploadError

if TYPE_CHECKING:
    from wheelyard.upload.plan import PlannedObject

BackendKind = Literal["s3", "directory"]
Outcome = Literal["uploaded", "present"]
"""``present``: an immutable object already held the same bytes when it was written."""


@dataclass(frozen=True, kw_only=True)
class Destination:
    """Everything a backend needs, built once at the CLI edge."""

    kind: BackendKind
    bucket: str
    endpoint_url: str | None = None
    output_dir: Path | None = None
    jobs: int = 8
    max_attempts: int = 8
    multipart_threshold: int = 64 << 20
    multipart_chunksize: int = 32 << 20


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    size: int
    sha256: str | None
    """From the object's ``sha256`` metadata (S3) or the file's bytes (directory)."""

    def holds(self, item: PlannedObject) -> bool:
        return self.size == item.size and self.sha256 == item.sha256


class Backend(Protocol):
    """A store of keys. Immutable objects are created only if absent; pages are replaced."""

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for messages (``s3://bucket/key`` or a path); no secrets."""
        ...

    def stat(self, keys: Sequence[str]) -> dict[str, StoredObject | None]:
        """Size and sha256 of each key, None when absent."""
        ...

    def put(
        self, objects: Sequence[PlannedObject], *, on_bytes: Callable[[int], None]
    ) -> dict[str, Outcome]:
        """Write ``objects`` (concurrently); raise :class:`UploadError` naming every key that
        failed or that already holds other bytes."""
        ...

    def close(self) -> None: ...


def conflict_error(conflicts: Sequence[tuple[str, StoredObject, PlannedObject]]) -> UploadError:
    """The error for keys that already hold other bytes than the ones being uploaded."""
    lines = []
    for where, stored, item in conflicts:
        if stored.sha256 is None:
            lines.append(f"{where}: exists without sha256 metadata (not written by wheelyard)")
        else:
            lines.append(
                f"{where}: holds sha256 {stored.sha256} ({stored.size} bytes), "
                f"not {item.sha256} ({item.size} bytes) from {item.source}"
            )
    return UploadError(
        "refusing to overwrite published files with other bytes:\n" + "\n".join(lines),
        hint="a published file never changes (CDNs and installers cache it): build a new "
        "version (e.g. X.Y.Z.postN) or upload under another --run-id; nothing was written",
    )


BackendFactory = Callable[[Destination], Backend]


def _s3(destination: Destination) -> Backend:
    from wheelyard.upload.transfer import S3Backend  # boto3 only when S3 is used

    return S3Backend.create(destination)


def _directory(destination: Destination) -> Backend:
    from wheelyard.upload.local import DirectoryBackend

    return DirectoryBackend.create(destination)


BACKENDS: dict[BackendKind, BackendFactory] = {"s3": _s3, "directory": _directory}


def open_backend(destination: Destination) -> Backend:
    return BACKENDS[destination.kind](destination)
