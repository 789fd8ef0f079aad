"""Per-wheel release checks: ZIP CRCs, PEP 427 name, dist-info, RECORD, METADATA, version."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import InvalidMetadata, Metadata
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from wheelyard.release.checks import Check

_SIGNATURES = ("RECORD.jws", "RECORD.p7s")


@dataclass(frozen=True, kw_only=True)
class WheelFacts:
    """What the checks learned about one wheel, for the set-level checks."""

    path: Path
    name: str | None  # canonical distribution name, from the filename
    version: str | None  # from METADATA (the filename's when METADATA is unreadable)


def _record_problems(
    archive: zipfile.ZipFile, record_name: str, digests: dict[str, tuple[bytes, int]]
) -> list[str]:
    """RECORD against the members: ``digests`` holds each member's sha256 and size, from the
    one streamed read of :func:`_scan` (a member is never read whole into memory)."""
    problems: list[str] = []
    rows = list(csv.reader(io.StringIO(archive.read(record_name).decode("utf-8"))))
    listed: set[str] = set()
    members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
    for row in rows:
        if not row:
            continue
        if len(row) != 3:
            problems.append(f"malformed row {row!r}")
            continue
        path, digest, size = row
        listed.add(path)
        if path == record_name or path.endswith(_SIGNATURES):
            continue
        if path not in members:
            problems.append(f"{path} is in RECORD but not in the wheel")
            continue
        algorithm, _, expected = digest.partition("=")
        if algorithm not in ("sha256", "sha384", "sha512"):
            problems.append(f"{path}: hash {algorithm or 'missing'} (need sha256 or stronger)")
            continue
        raw, length = digests[path] if algorithm == "sha256" else _digest(archive, path, algorithm)
        actual = base64.urlsafe_b64encode(raw).rstrip(b"=")
        if actual.decode() != expected:
            problems.append(f"{path}: hash mismatch")
        if size != str(length):
            problems.append(f"{path}: size {size} in RECORD, {length} in the wheel")
    unlisted = sorted(set(members) - listed - {record_name})
    problems.extend(
        f"{path} is not in RECORD" for path in unlisted if not path.endswith(_SIGNATURES)
    )
    return problems


def _digest(archive: zipfile.ZipFile, path: str, algorithm: str) -> tuple[bytes, int]:
    """A member's digest and size, streamed."""
    digest, length = hashlib.new(algorithm), 0
    with archive.open(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            length += len(chunk)
    return digest.digest(), length


def _scan(archive: zipfile.ZipFile) -> tuple[str | None, dict[str, tuple[bytes, int]]]:
    """Read every member once to its end (checking its CRC): the first that fails and why,
    and each member's sha256 and size for the RECORD check."""
    digests: dict[str, tuple[bytes, int]] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        try:
            digests[info.filename] = _digest(archive, info.filename, "sha256")
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            return f"{info.filename}: {exc}", digests
    return None, digests


def _dist_info_check(archive: zipfile.ZipFile, label: str) -> tuple[Check, str | None]:
    tops = {name.split("/", 1)[0] for name in archive.namelist()}
    infos = sorted(top for top in tops if top.endswith(".dist-info"))
    if len(infos) != 1:
        detail = f"{len(infos)} .dist-info directories: {', '.join(infos) or 'none'}"
        return Check(subject=label, name="dist-info", ok=False, detail=detail), None
    names = set(archive.namelist())
    missing = [f for f in ("METADATA", "WHEEL", "RECORD") if f"{infos[0]}/{f}" not in names]
    if missing:
        detail = f"{infos[0]} has no {', '.join(missing)}"
        return Check(subject=label, name="dist-info", ok=False, detail=detail), infos[0]
    return Check(subject=label, name="dist-info", ok=True, detail=infos[0]), infos[0]


def _names_check(label: str, tops: set[str], info: str, name: str, version: str) -> Check:
    """The .dist-info and .data directories carry the filename's name and version."""
    wrong = []
    for top in sorted(tops):
        stem, dot, suffix = top.rpartition(".")
        if not dot or suffix not in ("dist-info", "data"):
            continue
        dist, _, ver = stem.rpartition("-")
        if canonicalize_name(dist) != name or ver != version:
            wrong.append(top)
    if wrong:
        detail = f"{', '.join(wrong)} do not match {name} {version}"
        return Check(subject=label, name="dir-names", ok=False, detail=detail)
    return Check(subject=label, name="dir-names", ok=True, detail=info)


def verify_wheel(
    path: Path, *, expect_version: str, allow_dev: bool = False, label: str | None = None
) -> tuple[list[Check], WheelFacts]:
    """Every per-file check of ``path``; later checks are skipped once the ZIP is unreadable."""
    label = label or path.name
    checks: list[Check] = []
    facts = WheelFacts(path=path, name=None, version=None)

    def add(name: str, ok: bool, detail: str = "") -> None:
        checks.append(Check(subject=label, name=name, ok=ok, detail=detail))

    try:
        dist, file_version, _, _ = parse_wheel_filename(path.name)
        add("filename", True, "PEP 427")
        facts = WheelFacts(path=path, name=str(dist), version=str(file_version))
    except InvalidWheelFilename as exc:
        add("filename", False, str(exc))
        dist, file_version = None, None
    try:
        with zipfile.ZipFile(path) as archive:
            bad, digests = _scan(archive)
            if bad is not None:
                add("zip-crc", False, bad)
                return checks, facts
            add("zip-crc", True, f"{len(archive.infolist())} entries")
            info_check, info = _dist_info_check(archive, label)
            checks.append(info_check)
            if info is None or not info_check.ok:
                return checks, facts
            if dist is not None and file_version is not None:
                tops = {name.split("/", 1)[0] for name in archive.namelist()}
                checks.append(_names_check(label, tops, info, str(dist), str(file_version)))
            problems = _record_problems(archive, f"{info}/RECORD", digests)
            add("record", not problems, "; ".join(problems[:3]) or "every hash and size")
            raw = archive.read(f"{info}/METADATA")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError) as exc:
        add("zip-crc", False, f"unreadable: {exc}")
        return checks, facts
    try:
        metadata = Metadata.from_email(raw, validate=True)
    except (InvalidMetadata, ExceptionGroup, ValueError) as exc:
        add("metadata", False, f"does not parse: {exc}")
        return checks, facts
    add("metadata", True, f"Metadata-Version {metadata.metadata_version}")
    meta_version = str(metadata.version)
    facts = WheelFacts(path=path, name=facts.name, version=meta_version)
    versions = {str(file_version), meta_version, str(Version(expect_version))}
    detail = f"filename {file_version}, METADATA {meta_version}, expected {expect_version}"
    add("version", len(versions) == 1, detail)
    parsed = metadata.version
    dev = parsed.is_devrelease or parsed.local is not None
    add("no-dev", allow_dev or not dev, f"{meta_version} is a dev/local version" if dev else "")
    return checks, facts
