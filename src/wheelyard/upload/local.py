"""The directory backend: the same keys and rules as S3, written below a local directory.

Each object is copied to a temporary name beside its destination, then hard-linked into place
for package files (``link`` fails if the name exists, the file-system twin of ``If-None-Match``)
or renamed over the old page. A symlink on the way to a key is refused, so nothing is written
outside the directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from wheelyard.errors import UploadError
from wheelyard.upload.backend import Destination, Outcome, StoredObject, conflict_error
from wheelyard.upload.layout import check_relative_key
from wheelyard.wheelfile import hash_file

if TYPE_CHECKING:
    from wheelyard.upload.plan import PlannedObject


class _Conflict(Exception):
    def __init__(self, stored: StoredObject) -> None:
        self.stored = stored


class DirectoryBackend:
    """Keys as paths below ``root``."""

    def __init__(self, *, root: Path, jobs: int = 4) -> None:
        self._root = root
        self._jobs = jobs

    @classmethod
    def create(cls, destination: Destination) -> DirectoryBackend:
        if destination.output_dir is None:
            raise UploadError("the directory backend needs --output-dir DIR")
        return cls(root=destination.output_dir, jobs=destination.jobs)

    def describe(self, key: str) -> str:
        return str(self._root / key)

    def _path(self, key: str) -> Path:
        """The file for ``key``; no component below the root may be a symlink."""
        path = self._root
        for part in check_relative_key(key).split("/"):
            path = path / part
            if path.is_symlink():
                raise UploadError(
                    f"{path} is a symlink: refusing to write through it",
                    hint="remove the symlink or choose another --output-dir",
                )
        return path

    def _stat_one(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(mode):
            raise UploadError(f"{path} exists and is not a regular file")
        digest = hash_file(path)
        return StoredObject(size=digest.size, sha256=digest.sha256)

    def stat(self, keys: Sequence[str]) -> dict[str, StoredObject | None]:
        with ThreadPoolExecutor(max_workers=self._jobs) as pool:
            return dict(zip(keys, pool.map(self._stat_one, keys), strict=True))

    def _put_one(self, item: PlannedObject) -> Outcome:
        path = self._path(item.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path(item.key)  # a symlink raced in while the parents were made
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            shutil.copyfile(item.source, temporary, follow_symlinks=False)
            temporary.chmod(0o644)
            if not item.immutable:
                os.replace(temporary, path)  # noqa: PTH105 - the atomic rename is the point
                return "uploaded"
            try:
                os.link(temporary, path, follow_symlinks=False)
            except FileExistsError:
                stored = self._stat_one(item.key)
                if stored is not None and stored.holds(item):
                    return "present"
                raise _Conflict(stored or StoredObject(size=0, sha256=None)) from None
            return "uploaded"
        finally:
            temporary.unlink(missing_ok=True)

    def put(
        self, objects: Sequence[PlannedObject], *, on_bytes: Callable[[int], None]
    ) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        conflicts = []
        failures = []
        with ThreadPoolExecutor(max_workers=self._jobs) as pool:
            futures = [(item, pool.submit(self._put_one, item)) for item in objects]
            for item, future in futures:
                try:
                    outcomes[item.key] = future.result()
                    on_bytes(item.size)
                except _Conflict as conflict:
                    conflicts.append((self.describe(item.key), conflict.stored, item))
                except OSError as error:
                    failures.append(f"{self.describe(item.key)}: {error.strerror or error}")
        if conflicts:
            raise conflict_error(conflicts)
        if failures:
            raise UploadError(
                "cannot write:\n" + "\n".join(failures),
                hint="check that --output-dir is writable and has room",
            )
        return outcomes

    def close(self) -> None:
        return None
