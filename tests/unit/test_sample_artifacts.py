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
import tomllib
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
    # 13 distinct files; rocBLAS and its test once per family, 22 copies of the sample tool
    assert len(elves) == 38
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


def _merged_tree(top: Path, family: str) -> dict[str, Path]:
    """Path below the stage roots -> path on disk, over the generic and one family's artifacts."""
    merged: dict[str, Path] = {}
    for artifact in sorted(top.iterdir()):
        if not artifact.is_dir() or not artifact.name.endswith(("_generic", f"_{family}")):
            continue
        for root in (artifact / "artifact_manifest.txt").read_text().split():
            if (artifact / root).is_dir():
                merged |= {
                    p.relative_to(artifact / root).as_posix(): p for p in _walk(artifact / root)
                }
    return merged


@pytest.mark.parametrize("tree", ["committed", "fresh"])
def test_no_symlink_dangles_in_a_family_tree(tree: str, fresh: Path) -> None:
    """So `wheelyard build --strict` of the sample passes (tests that need a dangling link add
    one to a copy). Links may point into another artifact, as the dev links do."""
    top = SAMPLE if tree == "committed" else fresh
    for family in FAMILIES:
        merged = _merged_tree(top, family)
        links = {
            rel: os.path.normpath(os.path.join(os.path.dirname(rel), os.readlink(path)))
            for rel, path in merged.items()
            if path.is_symlink()
        }
        assert len(links) == 26, family
        assert links["lib/libamdhip64.so"] == "lib/libamdhip64.so.7"  # dev -> lib artifact
        assert links["lib/llvm/lib/clang/current"] == "lib/llvm/lib/clang/20"  # a directory
        assert {rel: target for rel, target in links.items() if target not in merged} == {}


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
    hip_roots = (SAMPLE / "core-hip_run_generic/artifact_manifest.txt").read_text().split()
    assert [(SAMPLE / "core-hip_run_generic" / root).is_dir() for root in hip_roots] == [
        True,
        False,
    ]
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


def _library_env() -> dict[str, str]:
    """The environment with the sample's generic and gfx120X-all library directories searched."""
    libraries = [
        *SAMPLE.glob("*_lib_generic/**/lib*.so.*"),
        *SAMPLE.glob("*_lib_gfx120X-all/**/lib*.so.*"),
    ]
    library_dirs = sorted({str(path.parent) for path in libraries})
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(library_dirs)}


def test_committed_programs_run_with_the_libraries_on_the_search_path() -> None:
    env = _library_env()

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


def _core_console_scripts() -> dict[str, dict[str, Any]]:
    """The console scripts the profile declares for rocm-sdk-core (read here, not via wheelyard)."""
    with open(REPO / "packaging" / "rocm" / "packages.toml", "rb") as stream:
        packages = tomllib.load(stream)["package"]
    (core,) = [package for package in packages if package["key"] == "core"]
    scripts: dict[str, dict[str, Any]] = core["console_scripts"]
    return scripts


# Programs with a source of their own (tested above); the others answer with their name.
OWN_SOURCES = ("hipconfig", "rocminfo")


def test_every_core_console_script_program_is_present_and_runs() -> None:
    """Each program runs as its console script would (argv[0] its name, the profile's test
    arguments, no GPU here) and answers with that name; exit 0 also for the GPU tools."""
    merged = _merged_tree(SAMPLE, "gfx120X-all")
    scripts, env = _core_console_scripts(), _library_env()
    assert len(scripts) >= 28
    for name, script in sorted(scripts.items()):
        paths = script["path"] if isinstance(script["path"], list) else [script["path"]]
        present = [path for path in paths if path in merged]
        assert present, f"{name}: none of {paths} in the sample"
        program = merged[present[0]].resolve()
        assert program.is_file(), name
        assert _is_elf(program), name
        result = subprocess.run(
            [name, *script.get("test_args", [])],
            executable=program,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, (name, result.stderr)
        if name not in OWN_SOURCES:
            assert result.stdout.split()[0] == name, (name, result.stdout)


def test_console_script_programs_are_links_where_therock_links_them() -> None:
    llvm = SAMPLE / "amd-llvm_run_generic/compiler/amd-llvm/stage"
    assert os.readlink(llvm / "lib/llvm/bin/amdclang++") == "clang++"
    assert os.readlink(llvm / "lib/llvm/bin/amdlld") == "lld"
    assert os.readlink(llvm / "bin/amdclang") == "../lib/llvm/bin/clang"
    assert os.readlink(llvm / "bin/amdflang") == "../lib/llvm/bin/amdflang"
    copies = [
        llvm / "lib/llvm/bin/lld",
        SAMPLE / "core-hip_run_generic/core/clr/stage/bin/hipcc",
        SAMPLE / "core-amdsmi_run_generic/core/amdsmi/stage/bin/amd-smi",
        SAMPLE / "rocprofiler-sdk_run_generic/profiler/rocprofiler-sdk/stage/bin/rocprofv3",
        SAMPLE / "rocgdb_run_generic/debug-tools/rocgdb/stage/bin/rocgdb",
    ]
    assert [path for path in copies if path.is_symlink() or not path.is_file()] == []
    assert len({_sha256(path) for path in copies}) == 1  # one binary, copied
    assert sum(path.stat().st_size for path in copies) < 5 * 8192  # small: the sample has 22
