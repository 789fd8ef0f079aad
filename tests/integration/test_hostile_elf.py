"""Hostile ELF files through the CLI: a SONAME shadowing a core library, a DT_NEEDED holding a
'/' or terminal escapes, absurd section headers. Each is refused with one ``error:`` line naming
the file, its wheel or artifact, with names escaped; no traceback, ``--out`` untouched, and a
canary file outside the work area unchanged (content, mode, owner, mtime)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SAMPLE, make_artifact, run_wheelyard
from tests.integration._canary import plant_canary, snapshot
from tests.unit._elfbuild import compile_elf, patch_header

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAMILY = "gfx120X-all"
LIBS = f"rocm-sdk-libraries-{FAMILY}"
ROCBLAS = "math-libs/BLAS/rocBLAS/stage/lib/librocblas.so.5.1.0"
USE_C = "int ext(void);\nint rpp(void) { return ext(); }\n"


@dataclass(frozen=True)
class Scene:
    work: Path  # holds --artifacts and --out; the build stages beside --out, in here
    artifacts: Path
    out: Path
    canary: Path  # outside the work area
    scratch: Path  # libraries linked against, shipped in no artifact


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    canary = tmp_path / "canary" / "libcanary.so.1"
    plant_canary(canary)
    work = tmp_path / "work"
    artifacts = work / "artifacts"
    shutil.copytree(SAMPLE, artifacts, symlinks=True)
    out = work / "out"
    (out / "dist").mkdir(parents=True)
    (out / "dist" / "previous-1.0-py3-none-any.whl").write_bytes(b"previous build")
    return Scene(work=work, artifacts=artifacts, out=out, canary=canary, scratch=tmp_path / "x")


def _refused(scene: Scene, *needles: str) -> str:
    """Run the build and check the refusal; returns the ``error:`` line."""
    before_out, before_canary = snapshot(scene.out), snapshot(scene.canary.parent)
    result = run_wheelyard(
        "build", FAMILY, "--artifacts", scene.artifacts, "--out", scene.out, timeout=60
    )
    text = result.stdout + result.stderr
    assert snapshot(scene.canary.parent) == before_canary, "the canary changed"
    assert snapshot(scene.out) == before_out, "--out changed"
    assert not list(scene.work.glob(".out.tmp-*")), "staging left behind"
    assert result.returncode != 0, text
    assert "Traceback" not in text
    assert not any(ord(c) < 0x20 and c not in "\n" for c in text), "raw control characters"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result.stderr!r}"
    return errors[0]


def _library_needing(scene: Scene, soname: str, where: str = "lib/librpp.so.1") -> Path:
    """A libraries-wheel library linked against a scratch library whose SONAME is ``soname``."""
    dependency = compile_elf(
        scene.scratch / "libdep.so.1", "int ext(void) { return 1; }\n", soname=soname
    )
    stage = make_artifact(scene.artifacts, f"rpp_lib_{FAMILY}", {}) / "stage"
    return compile_elf(stage / where, USE_C, soname="librpp.so.1", needs=[dependency])


def test_soname_shadowing_a_core_library(scene: Scene) -> None:
    # Stored as lib/rpp/libamdhip64.so.7: its siblings (RUNPATH $ORIGIN) would load it, not core's.
    stage = make_artifact(scene.artifacts, f"rpp_lib_{FAMILY}", {}) / "stage"
    compile_elf(
        stage / "lib/rpp/librpp.so.1", USE_C.replace("ext()", "1"), soname="libamdhip64.so.7"
    )
    line = _refused(scene)
    assert line.startswith("error: library names provided by more than one file of a wheel set")
    for needle in (
        f"libamdhip64.so.7 in the wheel set of {FAMILY}",
        "rocm-sdk-core/lib/libamdhip64.so.7 (from core-hip_lib_generic/lib/",
        f"{LIBS}/lib/rpp/libamdhip64.so.7 (from rpp_lib_{FAMILY}/lib/rpp/librpp.so.1)",
    ):
        assert needle in line, line


def test_needed_with_a_slash(scene: Scene) -> None:
    # At run time the loader would open this relative to the working directory: the canary.
    needed = f"../../{scene.canary.parent.name}/{scene.canary.name}"
    _library_needing(scene, needed)
    line = _refused(scene)
    assert line.startswith(
        f"error: unsafe library names in ELF files: {LIBS}/lib/librpp.so.1 "
        f"(from rpp_lib_{FAMILY}/lib/librpp.so.1): "
        f"DT_NEEDED \"{needed}\" contains '/': the loader would open it as a path"
    ), line


def test_needed_with_terminal_escapes_is_printed_escaped(scene: Scene) -> None:
    _library_needing(scene, "libesc\x1b]0;owned\x07\x1b[2J.so.1")
    line = _refused(scene)
    assert r'DT_NEEDED "libesc\x1b]0;owned\x07\x1b[2J.so.1" contains control characters' in line
    assert f"{LIBS}/lib/librpp.so.1" in line


@pytest.mark.parametrize(
    ("section", "field", "value", "problem"),
    [
        (".dynsym", "sh_entsize", 1 << 40, "has sh_entsize 1099511627776, not 24"),
        (None, "e_shnum", 0xFFFF, "the section header table of 65535 entries"),
    ],
)
def test_absurd_section_header(
    scene: Scene, section: str | None, field: str, value: int, problem: str
) -> None:
    library = scene.artifacts / f"blas_lib_{FAMILY}" / ROCBLAS
    patch_header(library, field, value, section=section)
    line = _refused(scene)
    assert line.startswith(
        f"error: ELF file blas_lib_{FAMILY}/lib/librocblas.so.5.1.0: cannot be parsed: "
    ), line
    assert problem in line
