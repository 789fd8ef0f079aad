from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from wheelyard.build.devel import (
    DevelEntry,
    plan_devel_entries,
    runtime_link_target,
    write_devel_archive,
)
from wheelyard.errors import DevelError

SDE = 315532800


def _sources(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    files = {"header": b"#pragma once\n", "tool": b"#!/bin/sh\necho hi\n", "lib": b"\x7fELF lib"}
    paths = {}
    for name, data in files.items():
        paths[name] = src / name
        paths[name].write_bytes(data)
    return paths


def _entries(src: dict[str, Path]) -> list[DevelEntry]:
    # Deliberately unsorted and without the parent directories.
    return [
        DevelEntry(path="lib/libamdhip64.so", type="symlink", target="libamdhip64.so.7"),
        DevelEntry(path="include/hip/hip_runtime.h", type="file", source=src["header"]),
        DevelEntry(
            path="lib/libamdhip64.so.7",
            type="runtime-link",
            source=src["lib"],
            target=runtime_link_target(
                "lib/libamdhip64.so.7", module="_rocm_sdk_core", module_path="lib/libamdhip64.so.7"
            ),
        ),
        DevelEntry(path="bin/hipconfig", type="file", source=src["tool"], executable=True),
        DevelEntry(path="lib/cmake", type="dir"),
    ]


def _write(tmp_path: Path, entries: list[DevelEntry], name: str = "out", sde: int = SDE) -> Path:
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    write_devel_archive(
        entries,
        tar_path=out / "devel.tar",
        manifest_path=out / "devel-manifest.json",
        source_date_epoch=sde,
    )
    return out


def test_runtime_link_target_climbs_to_site_packages() -> None:
    target = runtime_link_target(
        "lib/libamdhip64.so.7", module="_rocm_sdk_core", module_path="lib/libamdhip64.so.7"
    )
    assert target == "../../../_rocm_sdk_core/lib/libamdhip64.so.7"
    assert runtime_link_target("x", module="m", module_path="y") == "../../m/y"


def test_archive_is_deterministic(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    first = _write(tmp_path, _entries(src), "a")
    second = _write(tmp_path, list(reversed(_entries(src))), "b")
    later = _write(tmp_path, _entries(src), "c", sde=SDE + 1)
    for name in ("devel.tar", "devel-manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "devel.tar").read_bytes() != (later / "devel.tar").read_bytes()
    assert sorted(p.name for p in first.iterdir()) == ["devel-manifest.json", "devel.tar"]


def test_manifest_lists_every_entry_sorted_with_implied_dirs(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    out = _write(tmp_path, _entries(src))
    manifest = json.loads((out / "devel-manifest.json").read_text())
    assert manifest["schema"] == 1
    assert manifest["root"] == "root"
    entries = {entry["path"]: entry for entry in manifest["entries"]}
    assert [entry["path"] for entry in manifest["entries"]] == sorted(entries)
    assert {path for path, entry in entries.items() if entry["type"] == "dir"} == {
        "bin",
        "include",
        "include/hip",
        "lib",
        "lib/cmake",
    }
    header = entries["include/hip/hip_runtime.h"]
    assert header == {
        "path": "include/hip/hip_runtime.h",
        "type": "file",
        "size": len(b"#pragma once\n"),
        "sha256": hashlib.sha256(b"#pragma once\n").hexdigest(),
        "mode": 0o644,
    }
    assert entries["bin/hipconfig"]["mode"] == 0o755
    link = entries["lib/libamdhip64.so.7"]
    assert link == {
        "path": "lib/libamdhip64.so.7",
        "type": "runtime-link",
        "target": "../../../_rocm_sdk_core/lib/libamdhip64.so.7",
        "size": len(b"\x7fELF lib"),
        "sha256": hashlib.sha256(b"\x7fELF lib").hexdigest(),
    }
    alias = entries["lib/libamdhip64.so"]
    assert alias == {"path": "lib/libamdhip64.so", "type": "symlink", "target": "libamdhip64.so.7"}


def test_tar_members_are_normalised(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    out = _write(tmp_path, _entries(src))
    raw = (out / "devel.tar").read_bytes()
    assert raw[257:265] == b"ustar  \0"  # the GNU magic
    with tarfile.open(out / "devel.tar") as tar:
        members = tar.getmembers()
        names = [member.name for member in members]
        assert names == sorted(names)
        by_name = {member.name: member for member in members}
        for member in members:
            assert (member.mtime, member.uid, member.gid) == (SDE, 0, 0)
            assert (member.uname, member.gname) == ("", "")
        assert by_name["lib"].isdir()
        assert by_name["lib"].mode == 0o755
        assert by_name["bin/hipconfig"].mode == 0o755
        assert by_name["include/hip/hip_runtime.h"].mode == 0o644
        runtime = by_name["lib/libamdhip64.so.7"]
        assert runtime.issym()
        assert runtime.mode == 0o777
        assert runtime.linkname == "../../../_rocm_sdk_core/lib/libamdhip64.so.7"
        extracted = tar.extractfile(by_name["include/hip/hip_runtime.h"])
        assert extracted is not None
        assert extracted.read() == b"#pragma once\n"


def test_long_paths_survive(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    deep = "/".join(["a-rather-long-directory-name"] * 6) + "/file.h"
    out = _write(tmp_path, [DevelEntry(path=deep, type="file", source=src["header"])])
    with tarfile.open(out / "devel.tar") as tar:
        assert deep in tar.getnames()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (DevelEntry(path="/abs/x.h", type="dir"), "relative"),
        (DevelEntry(path="include/../x.h", type="dir"), "'..'"),
        (DevelEntry(path="include//x.h", type="dir"), "empty"),
        (DevelEntry(path="x.h", type="file"), "needs source"),
        (DevelEntry(path="x.h", type="symlink"), "needs target"),
        (DevelEntry(path="x", type="dir", target="y"), "takes no target"),
        (DevelEntry(path="lib/x", type="symlink", target="../../outside"), "leaves the devel root"),
        (DevelEntry(path="lib/x", type="symlink", target="/usr/lib/x"), "relative"),
        (
            DevelEntry(path="lib/x", type="runtime-link", source=Path("s"), target="../y"),
            "another module",
        ),
        (
            DevelEntry(path="lib/x", type="runtime-link", source=Path("s"), target="../../../../y"),
            "another module",
        ),
    ],
)
def test_invalid_entries_are_refused(entry: DevelEntry, message: str) -> None:
    with pytest.raises(DevelError, match=message):
        plan_devel_entries([entry])


def test_duplicates_and_file_parents_are_refused(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    same = DevelEntry(path="include/x.h", type="file", source=src["header"])
    with pytest.raises(DevelError, match="listed twice"):
        plan_devel_entries([same, same])
    below = DevelEntry(path="include/x.h/y.h", type="file", source=src["header"])
    with pytest.raises(DevelError, match="lies below it"):
        plan_devel_entries([same, below])


def test_failure_leaves_previous_outputs_untouched(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    out = _write(tmp_path, _entries(src))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    missing = DevelEntry(path="include/gone.h", type="file", source=tmp_path / "nope")
    with pytest.raises(DevelError, match="cannot read source"):
        _write(tmp_path, [*_entries(src), missing])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
