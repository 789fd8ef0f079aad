"""File system operations that never follow a symlink: confined writes and bounded reads.

``ConfinedWriter`` creates entries below one root directory by descriptor: every parent is
opened component by component with ``O_NOFOLLOW | O_DIRECTORY`` from the root's descriptor, and
files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so no link in the tree, whatever it
points at, can redirect a write. ``read_regular_file`` reads small side files (checksums,
manifests) only if they are regular files, without blocking on a FIFO.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from wheelyard.errors import ArtifactError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def file_mode(mode: int) -> int:
    """An archived file's mode without setuid, setgid, sticky or group/world write bits."""
    return (mode & 0o755) | 0o600


def dir_mode(mode: int) -> int:
    return (mode & 0o755) | 0o700


class ConfinedWriter:
    """Creates directories, files, symlinks and hard links below ``root``, following no link."""

    def __init__(self, root: Path) -> None:
        self._root = os.open(root, _DIR_FLAGS)
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self._root)

    def __enter__(self) -> ConfinedWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _directory(self, parts: tuple[str, ...]) -> int:
        """A descriptor of directory ``parts``, creating missing components (mode 0755)."""
        if not parts:
            return self._root
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self._root)
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._cached = (parts, fd)
        return fd

    def make_dir(self, parts: tuple[str, ...], mode: int) -> None:
        parent = self._directory(parts[:-1])
        # It may exist: created earlier as the parent of another member; then only the mode is set.
        with contextlib.suppress(FileExistsError):
            os.mkdir(parts[-1], dir_mode(mode), dir_fd=parent)
        fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        try:
            os.fchmod(fd, dir_mode(mode))
        finally:
            os.close(fd)

    def write_file(self, parts: tuple[str, ...], mode: int, chunks: Iterable[bytes]) -> None:
        fd = os.open(parts[-1], _NEW_FILE_FLAGS, 0o600, dir_fd=self._directory(parts[:-1]))
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fchmod(fd, file_mode(mode))
        finally:
            os.close(fd)

    def symlink(self, parts: tuple[str, ...], target: str) -> None:
        os.symlink(target, parts[-1], dir_fd=self._directory(parts[:-1]))

    def hard_link(self, parts: tuple[str, ...], existing: tuple[str, ...]) -> None:
        source = os.dup(self._directory(existing[:-1]))
        try:
            os.link(
                existing[-1],
                parts[-1],
                src_dir_fd=source,
                dst_dir_fd=self._directory(parts[:-1]),
                follow_symlinks=False,
            )
        finally:
            os.close(source)


def read_regular_file(path: Path, *, what: str, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; None if absent.

    A symlink, FIFO, device or directory there is an error naming it: the file is never opened
    through a link and opening never blocks.
    """
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(path, f"cannot read the {what}: {exc.strerror}") from None
    if not stat.S_ISREG(before.st_mode):
        raise ArtifactError(
            path,
            f"the {what} is {_kind(before.st_mode)}, not a regular file",
            hint=f"the {what} must be a plain file inside the artifact; replace it",
        )
    if before.st_size > limit:
        raise ArtifactError(path, f"the {what} is {before.st_size} bytes; at most {limit} allowed")
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise ArtifactError(path, f"cannot read the {what}: {exc.strerror}") from None
    try:
        after = os.fstat(fd)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise ArtifactError(path, f"the {what} was replaced while being read")
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise ArtifactError(path, f"cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ArtifactError(path, f"the {what} is larger than {limit} bytes")
    return data


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"
