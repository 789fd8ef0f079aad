"""Wheel files: the deterministic ZIP writer, parallel deflate, and the one file hasher."""

from wheelyard.wheelfile.backends import (
    DEFAULT_PRESET,
    PRESETS,
    Compression,
    choose_compression,
)
from wheelyard.wheelfile.digest import FileDigest, hash_file, same_bytes
from wheelyard.wheelfile.writer import (
    FileEntry,
    WheelSpec,
    WrittenWheel,
    dist_info_name,
    wheel_filename,
    write_wheels,
)

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Compression",
    "FileDigest",
    "FileEntry",
    "WheelSpec",
    "WrittenWheel",
    "choose_compression",
    "dist_info_name",
    "hash_file",
    "same_bytes",
    "wheel_filename",
    "write_wheels",
]
