"""``promote``: rewrite a built set from rc/alpha to final (or ``.postN``), inside and out.

A rename alone ships wheels that still report the old version (IREE #19155), so every place
the version lives is rewritten: the filename, the ``.dist-info``/``.data`` directory names,
METADATA ``Version`` and description, ``Requires-Dist`` pins on distributions of the set, the
runtime's ``_dist_info.json``, and RECORD (recomputed). Entries keep their order, timestamps and
modes, so the output is deterministic. A member that still names the old version is an error.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from wheelyard.errors import ReleaseError
from wheelyard.profile import check_successor
from wheelyard.release.smoke import find_wheels

_TEXT_SUFFIXES = (".py", ".json", ".txt", ".cfg", ".toml", "METADATA", "WHEEL")
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Promotion:
    old: str
    new: str
    dists: frozenset[str]  # canonical names of the set: the pins to rewrite
    files: tuple[tuple[Path, Path], ...]  # (source, destination)


def _stale(old: str) -> re.Pattern[bytes]:
    """The old version as a whole token (``7.10.0`` does not match inside ``7.10.0.post1``)."""
    return re.compile(
        rb"(?<![0-9A-Za-z.])" + re.escape(old.encode()) + rb"(?![0-9A-Za-z+]|\.[0-9A-Za-z])"
    )


def plan_promotion(dist: Path, to_version: str, out: Path) -> Promotion:
    """Check that the set has one version and ``to_version`` succeeds it; name every output."""
    wheels = find_wheels(dist)
    if not wheels:
        raise ReleaseError(f"--dist {dist} holds no wheels")
    versions = {str(parse_wheel_filename(path.name)[1]) for _, path in wheels}
    if len(versions) != 1:
        raise ReleaseError(f"--dist {dist} mixes versions {', '.join(sorted(versions))}")
    old = versions.pop()
    new = check_successor(old, to_version)
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"--out {out} is not empty", hint="pass a new or empty directory")
    dists = frozenset(str(parse_wheel_filename(path.name)[0]) for _, path in wheels)
    files = []
    for _, path in wheels:
        stem, _, rest = path.name.split("-", 2)
        target = out / path.parent.relative_to(dist) / f"{stem}-{new}-{rest}"
        files.append((path, target))
    return Promotion(old=old, new=new, dists=dists, files=tuple(files))


def _rename(name: str, old: str, new: str) -> str:
    top, slash, rest = name.partition("/")
    for suffix in (".dist-info", ".data"):
        if top.endswith(f"-{old}{suffix}"):
            return top[: -len(f"{old}{suffix}")] + f"{new}{suffix}" + slash + rest
    return name


def _metadata(data: bytes, promotion: Promotion) -> bytes:
    old, new = promotion.old, promotion.new
    text = data.decode("utf-8")
    header, sep, body = text.partition("\n\n")
    pin = re.compile(
        r"^(Requires-Dist:\s*)([A-Za-z0-9._-]+)(\[[^\]]*\])?(\s*)==\s*"
        + re.escape(old)
        + r"(?=$|[\s;,])"
    )
    lines = []
    for line in header.split("\n"):
        if line.startswith("Version:"):
            line = f"Version: {new}"
        match = pin.match(line)
        if match and canonicalize_name(match[2]) in promotion.dists:
            line = pin.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{m[4]}=={new}", line)
        lines.append(line)
    stale = _stale(old)
    body = stale.sub(new.encode(), body.encode()).decode() if body else body
    return ("\n".join(lines) + sep + body).encode("utf-8")


def _dist_info_json(data: bytes, promotion: Promotion) -> bytes:
    pattern = re.compile(rb'("version"\s*:\s*")' + re.escape(promotion.old.encode()) + rb'"')
    return pattern.sub(lambda m: m[1] + promotion.new.encode() + b'"', data)


def _rewriter(name: str, info_dir: str) -> Callable[[bytes, Promotion], bytes] | None:
    if name == f"{info_dir}/METADATA":
        return _metadata
    if name.endswith("/_dist_info.json"):
        return _dist_info_json
    return None


def _copy(
    src: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    dst: zipfile.ZipFile,
    name: str,
    rewrite: Callable[[bytes, Promotion], bytes] | None,
    promotion: Promotion,
) -> tuple[str, int]:
    """Copy one member under ``name``: its sha256 (RECORD form) and size."""
    entry = zipfile.ZipInfo(name, date_time=info.date_time)
    entry.external_attr, entry.create_system = info.external_attr, info.create_system
    entry.compress_type = info.compress_type
    digest, size = hashlib.sha256(), 0
    if rewrite is not None:
        data = rewrite(src.read(info), promotion)
        dst.writestr(entry, data)
        digest.update(data)
        size = len(data)
    else:
        with (
            src.open(info) as reader,
            dst.open(entry, "w", force_zip64=info.file_size >= 1 << 31) as writer,
        ):
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"sha256={encoded}", size


def promote_wheel(source: Path, target: Path, promotion: Promotion) -> None:
    """Write ``target``: ``source`` with every embedded version rewritten and a new RECORD."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as src:
        infos = [info for info in src.infolist() if not info.is_dir()]
        info_dirs = sorted(
            {
                i.filename.split("/", 1)[0]
                for i in infos
                if i.filename.split("/", 1)[0].endswith(".dist-info")
            }
        )
        if len(info_dirs) != 1:
            raise ReleaseError(f"{source}: {len(info_dirs)} .dist-info directories, need one")
        record_name = f"{info_dirs[0]}/RECORD"
        new_info = _rename(info_dirs[0], promotion.old, promotion.new)
        rows: list[str] = []
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
            record_info = None
            for info in infos:
                if info.filename == record_name:
                    record_info = info
                    continue
                name = _rename(info.filename, promotion.old, promotion.new)
                rewrite = _rewriter(info.filename, info_dirs[0])
                digest, size = _copy(src, info, dst, name, rewrite, promotion)
                rows.append(f"{_csv(name)},{digest},{size}")
            rows.append(f"{new_info}/RECORD,,")
            entry = zipfile.ZipInfo(
                f"{new_info}/RECORD", date_time=(record_info or infos[-1]).date_time
            )
            entry.external_attr = (record_info or infos[-1]).external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, "\n".join(rows) + "\n")


def _csv(name: str) -> str:
    return f'"{name}"' if any(c in name for c in ',"\n') else name


def stale_mentions(path: Path, old: str) -> list[str]:
    """Members of a promoted wheel that still name the old version (text members only)."""
    stale = _stale(old)
    found = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            text = info.filename.endswith(_TEXT_SUFFIXES) and info.file_size < _CHUNK * 8
            if stale.search(info.filename.encode()) or (text and stale.search(archive.read(info))):
                found.append(info.filename)
    return found


def promote(dist: Path, to_version: str, out: Path) -> Promotion:
    """Promote every wheel of ``dist`` into ``out``; on any failure ``out`` is removed."""
    promotion = plan_promotion(dist, to_version, out)
    try:
        for source, target in promotion.files:
            promote_wheel(source, target, promotion)
            left = stale_mentions(target, promotion.old)
            if left:
                raise ReleaseError(
                    f"{target.name} still names {promotion.old} in {', '.join(left[:5])}",
                    hint="the version is embedded somewhere promote does not rewrite: rebuild "
                    "with --version instead",
                )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return promotion
