"""``rocm-sdk init``: expand the devel archive all or nothing.

The devel wheel installs ``<devel module>/devel.tar`` and ``devel-manifest.json``. Expansion,
under an exclusive lock on ``<devel module>/.init.lock``:

1. extract into ``<devel module>/.root.tmp-<random>``, refusing absolute paths, ``..``, entries
   the manifest does not list, devices and links leaving their allowed area;
2. check every entry against the manifest (size and sha256 of files, link targets, and for
   links to runtime files the size and sha256 of the installed runtime file);
3. make links to runtime files hard links to them (same inode, no extra disk space);
4. rename the temporary directory to ``root``, add what it holds (and the lock file) to the
   devel distribution's RECORD so that ``pip uninstall`` removes it, and only then delete
   ``devel.tar``.

Any failure removes the temporary directory and leaves the previous state (``devel.tar``
intact); a killed run leaves only a temporary directory, removed by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from rocm_sdk import _record
from rocm_sdk._info import DevelLayout, DistInfo, Package, RocmSdkError, package_dir

LOCK_FILE = ".init.lock"
TMP_PREFIX = ".root.tmp-"
OLD_PREFIX = ".root.old-"
ENTRY_TYPES = ("file", "runtime-link", "symlink", "dir")
_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Broken(Exception):
    """The archive or the manifest is not what the devel wheel promised."""


@dataclass(frozen=True)
class DevelPaths:
    info: DistInfo
    package: Package
    layout: DevelLayout
    module_dir: Path

    @property
    def site_packages(self) -> Path:
        return self.module_dir.parent

    @property
    def root(self) -> Path:
        return self.module_dir / self.layout.root

    @property
    def archive(self) -> Path:
        return self.module_dir / self.layout.archive

    @property
    def manifest(self) -> Path:
        return self.module_dir / self.layout.manifest

    @property
    def bin_dir(self) -> Path:
        return self.root.joinpath(*self.layout.bin_dir.split("/"))

    @property
    def cmake_dir(self) -> Path:
        return self.root.joinpath(*self.layout.cmake_dir.split("/"))

    @property
    def cmake_config(self) -> Path:
        return self.root.joinpath(*self.layout.cmake_config.split("/"))

    def reinstall_hint(self) -> str:
        return (
            f'pip install --force-reinstall "{self.package.dist}=={self.info.version}" '
            "(all rocm packages must have the same version)"
        )


def locate(info: DistInfo) -> DevelPaths:
    """The installed devel package; RocmSdkError naming the extra to install if it is absent."""
    package = info.devel_package()
    if package is None or info.devel is None:
        raise RocmSdkError(f"this rocm build ({info.version}, {info.family}) has no devel package")
    directory = package_dir(package)
    if directory is None or not (directory / info.devel.manifest).is_file():
        raise RocmSdkError(
            f"the ROCm devel files ({package.dist}) are not installed; install them with: "
            + info.install_hint(package)
        )
    return DevelPaths(info=info, package=package, layout=info.devel, module_dir=directory)


def is_initialized(paths: DevelPaths) -> bool:
    return paths.root.is_dir() and not os.path.lexists(paths.archive)


def ensure_initialized(
    paths: DevelPaths,
    *,
    log: Callable[[str], None],
    warn: Optional[Callable[[str], None]] = None,
) -> bool:
    """Expand the devel tree unless already done; True if this call expanded it.

    What it expands is added to the devel distribution's RECORD, so that uninstalling the
    devel wheel removes it; ``warn`` hears when that is impossible.
    """
    if is_initialized(paths):
        return False
    with _locked(paths):
        if is_initialized(paths):  # another process finished while we waited for the lock
            return False
        if not os.path.lexists(paths.archive):
            raise RocmSdkError(
                f"{paths.module_dir}: neither {paths.layout.root}/ nor {paths.layout.archive} "
                f"exists; the devel package is damaged, repair it with: {paths.reinstall_hint()}"
            )
        _remove_leftovers(paths)
        try:
            count = _expand(paths, warn=warn or log)
        except _Broken as exc:
            raise RocmSdkError(
                f"devel expansion failed, nothing was changed ({paths.archive} is kept): {exc}\n"
                f"  repair with: {paths.reinstall_hint()}"
            ) from None
        except OSError as exc:
            raise RocmSdkError(
                f"devel expansion failed, nothing was changed ({paths.archive} is kept): {exc}"
            ) from None
    log(f"rocm-sdk init: expanded {count} entries into {paths.root}")
    return True


def read_manifest(path: Path) -> List[Dict[str, Any]]:
    """The validated entries of ``devel-manifest.json``."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise _Broken(f"cannot read {path} ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != 1:
        raise _Broken(f"{path}: not a schema 1 devel manifest")
    entries = raw.get("entries")
    if not isinstance(entries, list):
        raise _Broken(f"{path}: 'entries' is not a list")
    seen: Set[str] = set()
    for entry in entries:
        _check_manifest_entry(path, entry)
        if entry["path"] in seen:
            raise _Broken(f"{path}: {entry['path']} is listed twice")
        seen.add(entry["path"])
    return entries


def runtime_file(paths: DevelPaths, entry_path: str, target: str) -> Path:
    """Where a runtime-link entry's target lands, lexically, below site-packages."""
    parent = posixpath.dirname(entry_path)
    lexical = os.path.normpath(os.path.join(str(paths.root), *_parts(parent), *_parts(target)))
    return Path(lexical)


def _expand(paths: DevelPaths, *, warn: Callable[[str], None]) -> int:
    entries = read_manifest(paths.manifest)
    runtime = _installed_runtime_modules(paths.info)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=str(paths.module_dir))
    try:
        os.chmod(tmp, 0o755 & ~_umask())
        count = _extract(paths, Path(tmp), entries, runtime)
        old = None
        if os.path.lexists(paths.root):  # left by an older version: replace it
            old = paths.module_dir / (OLD_PREFIX + secrets.token_hex(6))
            os.rename(paths.root, old)
        try:
            os.rename(tmp, paths.root)
        except OSError:
            if old is not None:
                os.rename(old, paths.root)  # put the previous tree back
            raise
        tmp = ""
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    module = paths.module_dir.name
    names = [f"{module}/{LOCK_FILE}"] + [
        f"{module}/{paths.layout.root}/{e['path']}" for e in entries if e["type"] != "dir"
    ]
    problem = _record.add_rows(paths.site_packages, paths.package.dist, paths.info.version, names)
    if problem:
        warn(f"rocm-sdk init: warning: {problem}; uninstalling will leave {paths.root} behind")
    try:
        os.unlink(paths.archive)
    except OSError as exc:
        raise RocmSdkError(
            f"expanded {paths.root}, but cannot delete {paths.archive} ({exc.strerror}); "
            "delete it by hand"
        ) from None
    return count


def _extract(
    paths: DevelPaths, tmp: Path, entries: List[Dict[str, Any]], runtime: Dict[str, Path]
) -> int:
    expected = {entry["path"]: entry for entry in entries}
    seen: Set[str] = set()
    made_dirs = {""}
    symlinks: List[str] = []
    try:
        with tarfile.open(str(paths.archive), "r:") as tar:
            for member in tar:
                name = member.name.rstrip("/") if member.isdir() else member.name
                _check_relative(name, what=f"{paths.archive} member")
                entry = expected.get(name)
                if entry is None:
                    raise _Broken(f"{paths.archive} holds {name!r}, which the manifest lacks")
                if name in seen:
                    raise _Broken(f"{paths.archive} holds {name!r} twice")
                seen.add(name)
                parent = posixpath.dirname(name)
                if parent not in made_dirs:
                    raise _Broken(f"{name}: its directory {parent!r} was not extracted before it")
                dest = os.path.join(str(tmp), *name.split("/"))
                kind = entry["type"]
                _check_member_type(name, member, kind)
                if kind == "dir":
                    os.mkdir(dest, 0o755)
                    made_dirs.add(name)
                elif kind == "file":
                    _extract_file(tar, member, dest, entry)
                else:
                    if member.linkname != entry["target"]:
                        raise _Broken(
                            f"{name}: link target {member.linkname!r} differs from the "
                            f"manifest's {entry['target']!r}"
                        )
                    if kind == "symlink":
                        _check_symlink(name, entry["target"])
                        os.symlink(entry["target"], dest)
                        symlinks.append(dest)
                    else:
                        source = _runtime_source(paths, name, entry, runtime)
                        os.link(source, dest, follow_symlinks=False)
    except (tarfile.TarError, EOFError) as exc:
        raise _Broken(f"{paths.archive} is damaged ({exc})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise _Broken(
            f"{paths.archive} lacks {len(missing)} of the {len(expected)} entries of the "
            f"manifest: {shown}"
        )
    real_tmp = os.path.realpath(tmp)
    for link in symlinks:
        if not _inside(os.path.realpath(link), real_tmp):
            raise _Broken(f"symlink {link} resolves outside the devel root")
    return len(seen)


def _extract_file(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str, entry: Dict[str, Any]
) -> None:
    if member.size != entry["size"]:
        raise _Broken(
            f"{entry['path']}: {member.size} bytes in the archive, {entry['size']} in the manifest"
        )
    source = tar.extractfile(member)
    if source is None:
        raise _Broken(f"{entry['path']}: no content in the archive")
    mode = int(entry.get("mode", 0o644)) & 0o755
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    digest = hashlib.sha256()
    size = 0
    with source, os.fdopen(os.open(dest, flags, mode), "wb") as out:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise _Broken(f"{entry['path']}: content does not match the manifest (sha256 differs)")


def _runtime_source(
    paths: DevelPaths, name: str, entry: Dict[str, Any], runtime: Dict[str, Path]
) -> str:
    target = entry["target"]
    if target.startswith("/"):
        raise _Broken(f"{name}: runtime link target {target!r} is absolute")
    lexical = runtime_file(paths, name, target)
    site = str(paths.site_packages)
    if not _inside(str(lexical), site) or str(lexical) == site:
        raise _Broken(f"{name}: runtime link target {target!r} leaves site-packages")
    module = lexical.relative_to(site).parts[0]
    owners = {package.module: package for package in paths.info.runtime_packages()}
    if module not in owners:
        raise _Broken(f"{name}: runtime link target {target!r} is in no runtime package")
    module_dir = runtime.get(module)
    if module_dir is None:
        package = owners[module]
        raise _Broken(
            f"{name} links to {module}/, but {package.dist} is not installed; install it "
            f"with: {paths.info.install_hint(package)}"
        )
    if os.path.realpath(os.path.join(site, module)) != str(module_dir):
        raise _Broken(f"{name}: {module} is installed in {module_dir}, not beside the devel files")
    real = os.path.realpath(str(lexical))
    if not _inside(real, str(module_dir)):
        raise _Broken(f"{name}: runtime link target {target!r} resolves outside {module}/")
    try:
        st = os.stat(real)
    except OSError:
        raise _Broken(f"{name}: the runtime file {lexical} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Broken(f"{name}: the runtime file {lexical} is not a regular file")
    size, digest = _hash_file(real)
    if size != entry["size"] or digest != entry["sha256"]:
        raise _Broken(
            f"{name}: the runtime file {lexical} differs from the one the devel files were "
            "built with (mixed versions?)"
        )
    return real


def _installed_runtime_modules(info: DistInfo) -> Dict[str, Path]:
    found = {}
    for package in info.runtime_packages():
        directory = package_dir(package)
        if directory is not None:
            found[package.module] = directory
    return found


def _check_member_type(name: str, member: tarfile.TarInfo, kind: str) -> None:
    actual = (
        "dir"
        if member.isdir()
        else "file"
        if member.isreg()
        else "symlink"
        if member.issym()
        else "hard link"
        if member.islnk()
        else "device or fifo"
    )
    wanted = "symlink" if kind == "runtime-link" else kind
    if actual != wanted:
        raise _Broken(f"{name} is a {actual} in the archive but a {kind} in the manifest")


def _check_symlink(name: str, target: str) -> None:
    if target.startswith("/"):
        raise _Broken(f"{name}: symlink target {target!r} is absolute")
    depth = len(_parts(posixpath.dirname(name)))
    for part in _parts(target):
        depth = depth - 1 if part == ".." else depth + (part != ".")
        if depth < 0:
            raise _Broken(f"{name}: symlink target {target!r} leaves the devel root")


def _check_manifest_entry(path: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise _Broken(f"{path}: malformed entry {entry!r}")
    _check_relative(entry["path"], what=f"{path} entry")
    kind = entry.get("type")
    if kind not in ENTRY_TYPES:
        raise _Broken(f"{path}: {entry['path']} has unknown type {kind!r}")
    if kind in ("symlink", "runtime-link") and not isinstance(entry.get("target"), str):
        raise _Broken(f"{path}: {entry['path']} has no link target")
    if kind in ("file", "runtime-link"):
        size, digest = entry.get("size"), entry.get("sha256")
        if (
            not isinstance(size, int)
            or not isinstance(digest, str)
            or not _SHA256.fullmatch(digest)
        ):
            raise _Broken(f"{path}: {entry['path']} lacks a valid size and sha256")


def _check_relative(name: str, *, what: str) -> None:
    if not name or name.startswith("/") or "\0" in name:
        raise _Broken(f"{what} {name!r} is not a relative path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise _Broken(f"{what} {name!r} has an empty, '.' or '..' component")


def _hash_file(path: str) -> Tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _remove_leftovers(paths: DevelPaths) -> None:
    """Temporary trees of killed runs (safe: we hold the lock, their owners are gone)."""
    for child in sorted(os.listdir(paths.module_dir)):
        if child.startswith((TMP_PREFIX, OLD_PREFIX)):
            shutil.rmtree(paths.module_dir / child, ignore_errors=True)


@contextmanager
def _locked(paths: DevelPaths) -> Iterator[None]:
    import fcntl

    lock_path = paths.module_dir / LOCK_FILE
    try:
        fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RocmSdkError(
            f"cannot create {lock_path} ({exc.strerror}); run rocm-sdk init as the user "
            "who installed the rocm packages"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _parts(path: str) -> List[str]:
    return [part for part in path.split("/") if part]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
