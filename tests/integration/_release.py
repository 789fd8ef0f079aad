"""Helpers of the release tests: one sample build per module, and wheels rewritten on purpose."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from tests.conftest import run_wheelyard

FAMILY = "gfx120X-all"
RC = "7.10.0rc1"


def build_sample(out: Path, version: str = RC) -> Path:
    """``wheelyard build gfx120X-all --version V``; returns its dist directory."""
    result = run_wheelyard("build", FAMILY, "--out", out, "--version", version, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "dist"


def copy_dist(dist: Path, target: Path) -> Path:
    shutil.copytree(dist, target)
    return target


def wheel_of(dist: Path, prefix: str) -> Path:
    """The one wheel of ``dist`` (any depth) whose filename starts with ``prefix``."""
    found = sorted(p for p in dist.rglob("*.whl") if p.name.startswith(prefix))
    assert len(found) == 1, found
    return found[0]


Edit = Callable[[str, bytes], bytes | None]


def rewrite(path: Path, edit: Edit, extra: dict[str, bytes] | None = None) -> None:
    """Rewrite ``path`` member by member: ``edit(name, data)`` returns new data or None to drop
    the member. RECORD is left as it was, so it no longer matches what changed."""
    temporary = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(temporary, "w") as dst:
        for info in src.infolist():
            data = edit(info.filename, src.read(info))
            if data is not None:
                dst.writestr(info, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    temporary.replace(path)


def flip_byte(path: Path, member_suffix: str) -> None:
    """Flip one byte in the middle of a member's stored data (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    raw = bytearray(path.read_bytes())
    name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    raw[start + info.compress_size // 2] ^= 0x01
    path.write_bytes(bytes(raw))
