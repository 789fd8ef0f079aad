"""The frames of a ``.zst`` file, walked before anything is decompressed.

Every frame header is checked (the window it needs, the content size it declares) and every
block header is read, skipping block contents, so a truncated file is an error: zstandard's
streaming reader ends quietly at a cut frame, and a tar stream cut at a member boundary would
then pass as a complete, smaller archive. Layout per RFC 8878 section 3.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import zstandard

from wheelyard.artifacts.members import LIMIT_HINT
from wheelyard.errors import ArtifactError
from wheelyard.report import human_size

ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB: zstd's own default decoding limit (--long needs more)
_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # 16 magics, low nibble free
_DICT_ID_BYTES = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES = (0, 2, 4, 8)


def _corrupt(archive: Path, problem: str) -> ArtifactError:
    return ArtifactError(
        archive, f"corrupt or truncated archive ({problem})", hint="fetch the archive again"
    )


def _read(raw: BinaryIO, size: int, archive: Path, what: str) -> bytes:
    data = raw.read(size)
    if len(data) != size:
        raise _corrupt(archive, f"the file ends inside a zstd {what}")
    return data


def check_frames(raw: BinaryIO, archive: Path, *, max_bytes: int) -> None:
    """Walk every frame of ``raw`` (then rewind it); raise ArtifactError on any problem."""
    end = os.fstat(raw.fileno()).st_size
    declared = 0
    frames = 0
    while raw.tell() < end:
        magic = int.from_bytes(_read(raw, 4, archive, "frame magic"), "little")
        if magic & 0xFFFFFFF0 == _SKIPPABLE:
            size = int.from_bytes(_read(raw, 4, archive, "skippable frame"), "little")
            _skip(raw, size, end, archive)
            continue
        if magic != _MAGIC:
            raise _corrupt(archive, f"no zstd frame at byte {raw.tell() - 4}")
        frames += 1
        params, checksum = _frame_header(raw, archive)
        if params.content_size != zstandard.CONTENTSIZE_UNKNOWN:
            declared += params.content_size
        if declared > 2 * max_bytes + (64 << 20):
            raise ArtifactError(
                archive,
                f"the zstd frames declare {human_size(declared)} of content; the archive may "
                f"expand to at most {human_size(max_bytes)}",
                hint=LIMIT_HINT,
            )
        if params.window_size > ZSTD_MAX_WINDOW:
            raise ArtifactError(
                archive,
                f"a zstd frame needs a {human_size(params.window_size)} window to decode; "
                f"at most {human_size(ZSTD_MAX_WINDOW)} is allowed",
                hint="recompress without --long=N above 27",
            )
        _skip_blocks(raw, end, archive)
        if checksum:
            _read(raw, 4, archive, "frame checksum")
    if not frames:
        raise _corrupt(archive, "no zstd frame")
    raw.seek(0)


def _skip(raw: BinaryIO, size: int, end: int, archive: Path) -> None:
    if raw.seek(size, os.SEEK_CUR) > end:
        raise _corrupt(archive, "the file ends inside a zstd block")


def _frame_header(raw: BinaryIO, archive: Path) -> tuple[zstandard.FrameParameters, bool]:
    """The parameters of the frame whose magic was just read, and whether it has a checksum."""
    descriptor = _read(raw, 1, archive, "frame header")[0]
    single_segment = bool(descriptor & 0x20)
    if descriptor & 0x08:
        raise _corrupt(archive, "a zstd frame header sets a reserved bit")
    fcs_bytes = _CONTENT_SIZE_BYTES[descriptor >> 6] or (1 if single_segment else 0)
    rest = (0 if single_segment else 1) + _DICT_ID_BYTES[descriptor & 0x03] + fcs_bytes
    header = _MAGIC.to_bytes(4, "little") + bytes([descriptor])
    header += _read(raw, rest, archive, "frame header")
    try:
        return zstandard.get_frame_parameters(header), bool(descriptor & 0x04)
    except zstandard.ZstdError as exc:
        raise _corrupt(archive, str(exc)) from None


def _skip_blocks(raw: BinaryIO, end: int, archive: Path) -> None:
    while True:
        block = int.from_bytes(_read(raw, 3, archive, "block header"), "little")
        kind, size = (block >> 1) & 0x03, block >> 3
        if kind == 3:
            raise _corrupt(archive, "a zstd block has the reserved type")
        _skip(raw, 1 if kind == 1 else size, end, archive)  # an RLE block stores one byte
        if block & 1:
            return
