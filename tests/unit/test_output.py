"""Carrying a previous output over: what stays, what is replaced, what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wheelyard.build.output import carry_over, check_out, merge_closure, swap_into_place
from wheelyard.errors import OutputError, UsageError


def _old_output(root: Path) -> Path:
    out = root / "out"
    files = {
        "dist/core-1.whl": ("generic", "aa"),
        "dist/fam-a/lib-a-1.whl": ("fam-a", "bb"),
        "dist/fam-b/lib-b-1.whl": ("fam-b", "cc"),
    }
    for path in files:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(path)
    manifest = {
        "version": "1",
        "families": ["fam-a", "fam-b"],
        "files": [{"path": p, "family": f, "sha256": s} for p, (f, s) in files.items()],
    }
    (out / "build-manifest.json").write_text(json.dumps(manifest))
    (out / "dist" / "notes.txt").write_text("mine")
    return out


def test_rebuilt_family_is_replaced_even_with_other_bytes(tmp_path: Path) -> None:
    out = _old_output(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    written = {"dist/core-1.whl": "aa", "dist/fam-a/lib-a-1.whl": "other"}
    for path in written:  # what the new build wrote before carrying the old output over
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_text(path if path.startswith("dist/core") else "new bytes")
    carried = carry_over(out, staging, version="1", families=["fam-a"], written=written)
    assert carried.replaced == ("dist/fam-a/lib-a-1.whl",)
    assert carried.families == ("fam-b",)
    assert [e["path"] for e in carried.manifest_files] == ["dist/fam-b/lib-b-1.whl"]
    assert (staging / "dist" / "fam-b" / "lib-b-1.whl").read_text() == "dist/fam-b/lib-b-1.whl"
    assert (staging / "dist" / "notes.txt").read_text() == "mine"
    assert (staging / "dist" / "fam-a" / "lib-a-1.whl").read_text() == "new bytes"


def test_generic_file_with_other_bytes_is_refused(tmp_path: Path) -> None:
    out = _old_output(tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(OutputError, match="one filename must mean one content"):
        carry_over(out, staging, version="1", families=["fam-a"], written={"dist/core-1.whl": "x"})


def test_another_version_is_refused(tmp_path: Path) -> None:
    out = _old_output(tmp_path)
    with pytest.raises(OutputError, match="holds version 1"):
        carry_over(out, tmp_path, version="2", families=["fam-a"], written={})


def test_check_out_refuses_overlap_and_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="overlaps"):
        check_out(tmp_path / "a" / "out", tmp_path / "a")
    with pytest.raises(UsageError, match="is a file"):
        check_out(tmp_path / "f", tmp_path / "a")
    assert check_out(tmp_path / "new", tmp_path / "a") == (tmp_path / "new").resolve()


def test_swap_replaces_the_whole_directory(tmp_path: Path) -> None:
    out, staging = tmp_path / "out", tmp_path / "staging"
    (out / "old").mkdir(parents=True)
    (staging / "new").mkdir(parents=True)
    swap_into_place(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert not staging.exists()


def test_merged_closure_recounts_totals() -> None:
    old = {
        "files": [
            {"wheel": "lib-a", "path": "x.so", "needed": {"libc.so.6": "system"}},
            {"wheel": "lib-b", "path": "y.so", "needed": {"libz.so": "wheel:lib-b"}},
        ],
        "missing": [],
        "external": ["libdrm.so.2"],
    }
    new = {
        "schema": 1,
        "files": [{"wheel": "lib-a", "path": "x.so", "needed": {"libq.so": "wheel:core"}}],
        "missing": [],
        "external": [],
        "totals": {},
    }
    merged = merge_closure(old, new)
    assert [f["wheel"] for f in merged["files"]] == ["lib-a", "lib-b"]
    assert merged["totals"]["same_wheel"] == 1
    assert merged["totals"]["dependency"] == 1
    assert merged["totals"]["system"] == 0
    assert merged["external"] == ["libdrm.so.2"]
