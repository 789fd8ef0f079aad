"""The committed sample artifacts are what scripts/make_sample_artifacts.py generates.

ELF bytes depend on the compiler version, so ELF files are compared by their dynamic facts;
everything else (paths, kinds, executable bits, symlink targets, other bytes) must match exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_sample_artifacts.py"
SAMPLE = REPO / "samples" / "rocm-artifacts"
FAMILIES = ("gfx94X-dcgpu", "gfx110X-all", "gfx120X-all")
FIXED_MTIME = 315532800


def _script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fresh") / "rocm-artifacts"
    result = _script("--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _walk(top: Path) -> list[Path]:
    found = []
    for directory, dirs, files in os.walk(top):
        found += [Path(directory, name) for name in dirs + files]
    return sorted(found)


def _shape(top: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (kind, symlink target or executable bit); git keeps exactly these."""
    shape = {}
    for path in _walk(top):
        info = path.lstat()
        rel = path.relative_to(top).as_posix()
        if stat.S_ISLNK(info.st_mode):
            shape[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            shape[rel] = ("dir", "")
        else:
            shape[rel] = ("file", "executable" if info.st_mode & stat.S_IXUSR else "plain")
    return shape


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(4) == b"\x7fELF"


def _regular_files(top: Path) -> list[str]:
    return [rel for rel, (kind, _) in _shape(top).items() if kind == "file"]


def _present(elf: ELFFile, name: str) -> Any:
    section = elf.get_section_by_name(name)
    # Split debug files keep the section headers but not the contents (SHT_NOBITS).
    if section is None or section["sh_type"] == "SHT_NOBITS":
        return None
    return section


def _elf_facts(path: Path) -> dict[str, object]:
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        dynamic = _present(elf, ".dynamic")
        tags = list(dynamic.iter_tags()) if dynamic is not None else []

        def values(tag: str, attribute: str) -> list[str]:
            return [getattr(t, attribute) for t in tags if t.entry.d_tag == tag]

        dynsym = _present(elf, ".dynsym")
        verdef = _present(elf, ".gnu.version_d")
        return {
            "machine": elf["e_machine"],
            "type": elf["e_type"],
            "interpreter": _present(elf, ".interp") is not None,
            "soname": values("DT_SONAME", "soname"),
            "needed": values("DT_NEEDED", "needed"),
            "rpath": values("DT_RPATH", "rpath"),
            "runpath": values("DT_RUNPATH", "runpath"),
            "defined": sorted(
                symbol.name
                for symbol in (dynsym.iter_symbols() if dynsym is not None else ())
                if symbol.name and symbol["st_shndx"] != "SHN_UNDEF"
            ),
            "version_definitions": [
                aux.name
                for _, auxes in (verdef.iter_versions() if verdef is not None else ())
                for aux in auxes
            ],
        }


def _glibc_versions(path: Path) -> set[str]:
    with open(path, "rb") as stream:
        verneed = _present(ELFFile(stream), ".gnu.version_r")
        if verneed is None:
            return set()
        return {
            aux.name
            for _, auxes in verneed.iter_versions()
            for aux in auxes
            if aux.name.startswith("GLIBC_")
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_sample_has_the_generated_paths_kinds_modes_and_links(fresh: Path) -> None:
    committed, generated = _shape(SAMPLE), _shape(fresh)
    assert sorted(committed.keys() - generated.keys()) == [], "only in the committed sample"
    assert sorted(generated.keys() - committed.keys()) == [], "only in a fresh build"
    assert {rel: v for rel, v in committed.items() if generated[rel] != v} == {}


def test_committed_non_elf_files_are_byte_identical(fresh: Path) -> None:
    texts = [rel for rel in _regular_files(fresh) if not _is_elf(fresh / rel)]
    assert "README.md" in texts
    assert [rel for rel in texts if _sha256(SAMPLE / rel) != _sha256(fresh / rel)] == []


def test_committed_elf_files_have_the_generated_dynamic_facts(fresh: Path) -> None:
    elves = [rel for rel in _regular_files(fresh) if _is_elf(fresh / rel)]
    assert len(elves) == 16  # 12 distinct files; rocBLAS and its test once per family
    for rel in elves:
        assert _elf_facts(SAMPLE / rel) == _elf_facts(fresh / rel), rel


def test_generator_is_deterministic_and_force_replaces_a_sample(
    fresh: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    (out / "stale_lib_generic").mkdir(parents=True)
    (out / "README.md").write_text("old\n")
    assert _script("--out", out).returncode == 1  # not empty, no --force
    result = _script("--out", out, "--force")
    assert result.returncode == 0, result.stderr
    assert _shape(out) == _shape(fresh)
    for path in _walk(out):
        info = path.lstat()
        assert info.st_mtime == FIXED_MTIME, path
        rel = path.relative_to(out)
        assert info.st_mode == (fresh / rel).lstat().st_mode, rel
        if stat.S_ISREG(info.st_mode):
            assert path.read_bytes() == (fresh / rel).read_bytes(), rel


def test_force_refuses_to_clear_a_directory_that_is_not_a_sample(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me\n")
    result = _script("--out", tmp_path, "--force")
    assert result.returncode == 1
    assert "notes.txt" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"


def test_check_lists_the_differences(fresh: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    shutil.copytree(fresh, stale, symlinks=True)
    readme = "core-hip_doc_generic/core/clr/stage/share/doc/hip/README.md"
    (stale / readme).write_text("edited by hand\n")
    (stale / "prim_dev_generic/math-libs/rocPRIM/stage/include/rocprim/rocprim.hpp").unlink()
    result = _script("--check", stale)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"differs: {readme} ({stale}: file, not executable, sha256 {_sha256(stale / readme)}; "
        f"fresh build: file, not executable, sha256 {_sha256(fresh / readme)})",
        "only in the fresh build: prim_dev_generic/math-libs/rocPRIM/stage/include/rocprim/"
        "rocprim.hpp",
    ]
    assert "--out" in result.stderr  # says how to regenerate


def test_committed_sample_stays_small() -> None:
    total = sum((SAMPLE / rel).stat().st_size for rel in _regular_files(SAMPLE))
    assert 100_000 < total < 2 * 1024 * 1024


@pytest.mark.parametrize("tree", ["committed", "fresh"])
def test_elf_files_need_at_most_glibc_2_28(tree: str, fresh: Path) -> None:
    top = SAMPLE if tree == "committed" else fresh
    needed = set()
    for rel in _regular_files(top):
        if _is_elf(top / rel):
            needed |= _glibc_versions(top / rel)
    assert "GLIBC_2.2.5" in needed
    too_new = [v for v in needed if tuple(map(int, v[6:].split("."))) > (2, 28)]
    assert too_new == []


def test_sample_has_the_shapes_wheelyard_must_handle() -> None:
    lib = SAMPLE / "core-hip_lib_generic/core/clr/stage/lib"
    assert _elf_facts(lib / "libamdhip64.so.7.1.25000")["runpath"] == []
    assert _elf_facts(lib / "libhiprtc.so.7.1.25000")["runpath"] == ["/opt/rocm/lib"]
    hsa = SAMPLE / "core-runtime_lib_generic/core/ROCR-Runtime/stage/lib"
    assert _elf_facts(hsa / "libhsa-runtime64.so.1.15.0")["runpath"] == ["$ORIGIN/rocm_sysdeps/lib"]
    static = SAMPLE / "core-hip_dev_generic/core/clr/stage/lib/libamdhip64_static.so"
    assert not _is_elf(static)
    run = SAMPLE / "core-hip_run_generic/core/hipcc/stage/bin/hipcc.pl"
    assert run.is_symlink()
    assert not run.exists()
    rocblas = {
        _sha256(SAMPLE / f"blas_lib_{family}/math-libs/BLAS/rocBLAS/stage/lib/librocblas.so.5.1.0")
        for family in FAMILIES
    }
    assert len(rocblas) == 1
    kernels = sorted(SAMPLE.glob("blas_lib_*/*/*/*/stage/lib/rocblas/library/*.dat"))
    assert len(kernels) == 7
    assert len({_sha256(path) for path in kernels}) == 7
    manifest = (SAMPLE / "blas_lib_gfx120X-all/artifact_manifest.txt").read_text().split()
    assert [(SAMPLE / "blas_lib_gfx120X-all" / root).is_dir() for root in manifest] == [True, False]
    empty = [
        path.name
        for path in SAMPLE.iterdir()
        if path.is_dir() and [c.name for c in path.iterdir()] == ["artifact_manifest.txt"]
    ]
    assert sorted(empty) == sorted(
        [f"fft_lib_{family}" for family in FAMILIES]
        + ["miopen_lib_gfx94X-dcgpu", "core-ocl_lib_generic"]
    )


def test_committed_programs_run_with_the_libraries_on_the_search_path() -> None:
    libraries = [
        *SAMPLE.glob("*_lib_generic/**/lib*.so.*"),
        *SAMPLE.glob("*_lib_gfx120X-all/**/lib*.so.*"),
    ]
    library_dirs = sorted({str(path.parent) for path in libraries})
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(library_dirs)}

    def run(rel: str, *args: str) -> str:
        result = subprocess.run(
            [SAMPLE / rel, *args], capture_output=True, text=True, env=env, check=False, timeout=30
        )
        assert result.returncode == 0, (rel, result.stderr)
        return result.stdout

    assert run("core-runtime_run_generic/core/rocminfo/stage/bin/rocminfo", "--version") == (
        "rocminfo 1.15.0 (HSA runtime 1.15)\n"
    )
    assert "gfx1201" in run("core-runtime_run_generic/core/rocminfo/stage/bin/rocminfo")
    assert run("core-hip_run_generic/core/clr/stage/bin/hipconfig", "--version") == ("7.1.25000\n")
    llvm = "amd-llvm_run_generic/compiler/amd-llvm/stage"
    assert run(f"{llvm}/bin/amdclang", "--version").startswith("amdclang version 20.0.0")
    assert run(f"{llvm}/lib/llvm/bin/clang++", "--version").startswith("clang++ version 20.0.0")
    assert "checksum ok" in run(
        "blas_test_gfx120X-all/math-libs/BLAS/rocBLAS/stage/bin/rocblas-test"
    )
    assert "0 failed" in run("core-hip_test_generic/core/clr/stage/bin/hip_unit_tests")
