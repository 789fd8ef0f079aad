"""Plan the entries of a set of wheels and decide, in write order, which ones share bytes.

Each wheel's entries are sorted by name, ``.dist-info/`` entries last (``RECORD`` is written
after them). Every source is stat'ed, and every entry gets a content key so that identical
bytes are deflated once per write, however many entries or wheels carry them; the first entry
of a key in write order is compressed, later ones copy its compressed bytes:

- entries reading the same file (same device, inode, size and mtime) share a key for free;
- generated ``data`` entries are hashed in memory and key on (sha256, size);
- files of at least 64 KiB whose size equals another distinct file's may hold equal bytes (a
  library that two GPU families both ship). The first of each such size group in write order
  is simply compressed: its SHA-256 falls out of that one read. Each later one is hashed on
  the thread pool, submitted before any deflate job so that it runs alongside them, and is
  decided when the writer gets to it (:meth:`Dedup.decide`): equal to a member already
  compressed (waiting for that member's last piece if needed), it copies; else it is
  compressed too, and checked against its hash. So the common case reads each file once, and
  only a same-size file with other bytes is read twice. Smaller files are not worth a hash.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wheelyard.errors import WheelError
from wheelyard.wheelfile.deflate import FileIdentity, file_identity
from wheelyard.wheelfile.digest import hash_file

if TYPE_CHECKING:
    from wheelyard.wheelfile.writer import FileEntry, WheelSpec

HASH_MIN = 64 << 10
Key = tuple[object, ...]


@dataclass(frozen=True, kw_only=True)
class Item:
    index: int  # position in write order across all wheels
    arcname: str
    mode: int
    size: int
    source: Path | None
    data: bytes | None
    identity: FileIdentity | None  # of the source when planned
    sha256: bytes | None  # of data entries
    prehash: Future[bytes] | None  # the later members of a size group: hashed ahead
    grouped: bool  # its size is shared with another distinct source file


@dataclass(frozen=True, kw_only=True)
class WheelPlan:
    spec: WheelSpec
    temp: Path
    items: tuple[Item, ...]


@dataclass(frozen=True, kw_only=True)
class Decision:
    key: Key | None  # None: an empty entry, never shared
    first: bool  # compress here (else copy the bytes written for the first of this key)
    sha256: bytes | None  # known before compressing: check the compressed read against it


def plan(specs: Sequence[WheelSpec], pool: ThreadPoolExecutor) -> tuple[list[WheelPlan], Dedup]:
    """Order and stat every entry; start hashing the files that may duplicate an earlier one."""
    seen_paths: set[Path] = set()
    ordered: list[tuple[WheelSpec, list[FileEntry]]] = []
    for spec in specs:
        if spec.path in seen_paths:
            raise WheelError(spec.path, "the same wheel is listed twice in one write")
        seen_paths.add(spec.path)
        ordered.append((spec, _ordered_entries(spec)))
    sources = sorted({e.source for _, entries in ordered for e in entries if e.source})
    identities = {source: _stat_source(source) for source in sources}
    by_size: dict[int, set[FileIdentity]] = {}
    for known in identities.values():
        by_size.setdefault(known[2], set()).add(known)
    grouped = {i for i in identities.values() if i[2] >= HASH_MIN and len(by_size[i[2]]) > 1}
    leads: set[int] = set()  # sizes whose first member (in write order) is already placed
    prehashes: dict[FileIdentity, Future[bytes]] = {}
    plans, items, index = [], [], 0
    for spec, entries in ordered:
        wheel_items = []
        for entry in entries:
            identity = identities[entry.source] if entry.source is not None else None
            if identity in grouped and identity not in prehashes:
                assert identity is not None
                assert entry.source is not None
                if identity[2] in leads:
                    prehashes[identity] = pool.submit(_sha256, entry.source)
                leads.add(identity[2])
            data = entry.data
            item = Item(
                index=index,
                arcname=entry.arcname,
                mode=0o755 if entry.executable else 0o644,
                size=len(data) if data is not None else identity[2] if identity else 0,
                source=entry.source,
                data=data,
                identity=identity,
                sha256=hashlib.sha256(data).digest() if data is not None else None,
                prehash=prehashes.get(identity) if identity else None,
                grouped=identity in grouped,
            )
            wheel_items.append(item)
            index += 1
        items.extend(wheel_items)
        plans.append(WheelPlan(spec=spec, temp=temp_path(spec.path), items=tuple(wheel_items)))
    return plans, Dedup(items)


class Dedup:
    """Decisions about sharing, made once per item in write order, from one thread."""

    def __init__(self, items: Sequence[Item]) -> None:
        self._items = items
        self._decisions: list[Decision] = []
        self._seen: set[Key] = set()
        self._by_identity: dict[FileIdentity, Key] = {}
        self._members: dict[int, list[Key]] = {}  # compressed files of a size group, in order
        self._digests: dict[Key, Callable[[], bytes | None]] = {}

    def decide(self, index: int) -> Decision:
        """The decision for item ``index`` (and, first, for every item before it)."""
        while len(self._decisions) <= index:
            self._decisions.append(self._decide(self._items[len(self._decisions)]))
        return self._decisions[index]

    def compressing(self, index: int, digest: Callable[[], bytes | None]) -> None:
        """Item ``index`` is being compressed; ``digest`` waits for its SHA-256 (None: the
        compression failed, and the writer will report why when it gets there)."""
        decision = self._decisions[index]
        if decision.key is not None and decision.key not in self._digests:
            self._digests[decision.key] = digest

    def _decide(self, item: Item) -> Decision:
        if not item.size:
            return Decision(key=None, first=False, sha256=None)
        sha256 = item.sha256
        if item.identity is None:
            key: Key = ("sha256", sha256, item.size)
        elif item.identity in self._by_identity:
            key = self._by_identity[item.identity]
        else:
            key = ("file", item.identity)
            if item.prehash is not None:
                sha256 = item.prehash.result()
                for member in self._members.get(item.size, []):
                    if self._digests[member]() == sha256:
                        key = member
                        break
            self._by_identity[item.identity] = key
        first = key not in self._seen
        self._seen.add(key)
        if first and item.grouped:
            self._members.setdefault(item.size, []).append(key)
            if sha256 is not None:
                known = sha256
                self._digests[key] = lambda: known
        return Decision(key=key, first=first, sha256=sha256)


def _ordered_entries(spec: WheelSpec) -> list[FileEntry]:
    if not spec.dist_info.endswith(".dist-info") or "/" in spec.dist_info:
        raise WheelError(spec.path, f"dist_info {spec.dist_info!r} must be a NAME.dist-info folder")
    prefix = spec.dist_info + "/"
    names: set[str] = set()
    for entry in spec.entries:
        _check_arcname(spec.path, entry.arcname)
        if entry.arcname in names:
            raise WheelError(spec.path, f"entry {entry.arcname!r} is listed twice")
        if entry.arcname == prefix + "RECORD":
            raise WheelError(spec.path, "RECORD is written by the wheel writer; do not pass it")
        names.add(entry.arcname)
    return sorted(spec.entries, key=lambda e: (e.arcname.startswith(prefix), e.arcname))


def _check_arcname(wheel: Path, arcname: str) -> None:
    parts = arcname.split("/")
    try:
        arcname.encode()
    except UnicodeEncodeError:
        parts = [""]
    if "\\" in arcname or any(part in ("", ".", "..") for part in parts):
        raise WheelError(
            wheel,
            f"bad entry name {arcname!r}",
            hint="entry names are relative posix paths without empty, '.' or '..' parts",
        )


def _stat_source(source: Path) -> FileIdentity:
    try:
        st = source.stat()
    except FileNotFoundError:
        raise WheelError(source, "source file does not exist") from None
    except OSError as exc:
        raise WheelError(source, f"cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise WheelError(source, "a wheel entry's source must be a regular file")
    return file_identity(st)


def temp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _sha256(path: Path) -> bytes:
    """The raw digest of a source file; a read failure names the file."""
    try:
        return bytes.fromhex(hash_file(path).sha256)
    except OSError as exc:
        raise WheelError(
            path, f"cannot read: {exc.strerror}", hint="check the input file and run again"
        ) from exc
