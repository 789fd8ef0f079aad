"""One edited copy per distinct library content and RUNPATH, however many families ship it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import PROFILE, SAMPLE

from wheelyard.artifacts.catalog import find_artifacts, read_artifact, select
from wheelyard.build import assemble
from wheelyard.build.split import plan_split
from wheelyard.elf import read_elf
from wheelyard.profile.definitions import load_profile

FAMILIES = ("gfx94X-dcgpu", "gfx110X-all")
LIBRARY = "librocblas.so.5.1.0"  # byte-identical in every family of the sample, no RUNPATH
STORED = "lib/librocblas.so.5"  # stored under its soname


def _fix(artifacts: Path, workdir: Path) -> assemble.RunpathResult:
    profile = load_profile(PROFILE)
    families = profile.families.resolve(FAMILIES)
    sources = select(find_artifacts(artifacts), FAMILIES)
    read = [read_artifact(s, extract_to=workdir / "extract") for s in sources]
    plan = plan_split(profile, families, read)
    files = [staged for view in plan.views for staged in view.tree.values()]
    facts = assemble.read_elf_facts(files, jobs=2)
    links = assemble.tree_links(plan, facts)
    payloads = assemble.runtime_payloads(plan, links, on_dangling=lambda _line: None)
    return assemble.fix_runpaths(profile, payloads, facts, workdir=workdir / "elf", jobs=2)


def _library_keys(result: assemble.RunpathResult) -> list[tuple[str, str]]:
    return sorted(key for key in result.sources if key[1] == STORED)


def test_two_families_share_one_edited_copy(tmp_path: Path) -> None:
    result = _fix(SAMPLE, tmp_path)
    keys = _library_keys(result)
    assert len(keys) == 2  # one per family's libraries wheel
    assert len({key[0] for key in keys}) == 2
    assert result.sources[keys[0]] == result.sources[keys[1]]
    written = sorted(p for p in (tmp_path / "elf").rglob("*") if p.is_file())
    assert len(written) == result.copies == len(set(result.sources.values()))
    edited = sum(count for how, count in result.edits.items() if how != "unchanged")
    assert result.copies < edited  # the sharing saved at least the second family's copy
    shared = read_elf(result.sources[keys[0]])
    assert shared is not None
    assert shared.runpath  # the shared copy carries the new RUNPATH


def test_different_bytes_get_their_own_copy(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(SAMPLE, tree, symlinks=True)
    changed = next(tree.glob(f"blas_lib_gfx110X-all/**/{LIBRARY}"))
    data = changed.read_bytes()
    assert b"GCC: (" in data
    # Same size, different content (in the .comment section): must not share the other copy.
    changed.write_bytes(data.replace(b"GCC: (", b"gcc: (", 1))
    result = _fix(tree, tmp_path / "work")
    keys = _library_keys(result)
    assert len(keys) == 2
    assert result.sources[keys[0]] != result.sources[keys[1]]
    written = sorted(p for p in (tmp_path / "work" / "elf").rglob("*") if p.is_file())
    assert len(written) == result.copies == len(set(result.sources.values()))
