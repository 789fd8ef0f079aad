"""Wheel files: the deterministic ZIP writer, parallel deflate, and the one file hasher."""

from wheelyard.wheelfile.digest import FileDigest, hash_file
from wheelyard.wheelfile.writer import (
    FileEntry,
    WheelSpec,
    WrittenWheel,
    dist_info_name,
    wheel_filename,
    write_wheels,
)

__all__ = [
    "FileDigest",
    "FileEntry",
    "WheelSpec",
    "WrittenWheel",
    "dist_info_name",
    "hash_file",
    "wheel_filename",
    "write_wheels",
]
