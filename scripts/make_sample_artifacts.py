#!/usr/bin/env python3
"""Generate the sample TheRock artifact tree in ``samples/rocm-artifacts``.

The sample mimics the layout of a real TheRock build (one directory per artifact, stage roots
listed in ``artifact_manifest.txt``, soname symlink chains, RUNPATHs as TheRock leaves them) with
tiny but real x86_64 ELF files compiled from the C sources in ``scripts/sample_sources/`` (with
the headers, CMake files and texts the tree carries), so every part of wheelyard can be exercised
without downloading gigabytes of ROCm.

    python scripts/make_sample_artifacts.py --out samples/rocm-artifacts --force
    python scripts/make_sample_artifacts.py --check samples/rocm-artifacts

Standalone on purpose (standard library, gcc and objcopy only); nothing imports it. The output is
deterministic: fixed compiler flags, no build ids, no debug paths, fixed modes and mtimes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import runpy
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# 1980-01-01, the earliest time a zip entry can hold (wheelyard's default SOURCE_DATE_EPOCH).
FIXED_MTIME = 315532800

FAMILIES = {
    "gfx94X-dcgpu": ("gfx942",),
    "gfx110X-all": ("gfx1100", "gfx1101", "gfx1102", "gfx1103"),
    "gfx120X-all": ("gfx1200", "gfx1201"),
}

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9.-]+_(lib|run|dev|dbg|doc|test)_[A-Za-z0-9.-]+$")

# Variables that would make gcc or ld pick up something from the caller's machine.
_TOOL_ENV_DROP = (
    "LD_RUN_PATH",
    "LIBRARY_PATH",
    "CPATH",
    "C_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "CFLAGS",
    "LDFLAGS",
    "DEPENDENCIES_OUTPUT",
    "SUNPRO_DEPENDENCIES",
)
_COMPILE_FLAGS = ("-std=c11", "-O1", "-pipe", "-Wall", "-Wextra", "-U_FORTIFY_SOURCE", "-Iinclude")
_LINK_FLAGS = (
    "-Wl,--build-id=none",
    "-Wl,--hash-style=gnu",
    "-Wl,--no-as-needed",
    "-Wl,-rpath-link,.",
)

# --- binaries ------------------------------------------------------------------------------

# What the sample is made of: C sources in src/, the list of ELF files to build, and the files
# the tree carries, each at its path below a stage root (include/, lib/cmake/, share/doc/...).
SOURCES = Path(__file__).resolve().parent / "sample_sources"


@dataclass(frozen=True, kw_only=True)
class Binary:
    """One ELF file to compile: a table of SOURCES/binaries.toml, which explains the fields."""

    output: str
    source: str
    soname: str | None = None
    links: tuple[str, ...] = ()
    runpath: str | None = None
    version_node: str | None = None
    exports: tuple[str, ...] = ()
    link_flags: tuple[str, ...] = ()


def binaries() -> tuple[Binary, ...]:
    """The ELF files of the sample, in build order."""
    with (SOURCES / "binaries.toml").open("rb") as stream:
        rows: list[dict[str, Any]] = tomllib.load(stream)["binary"]
    lists = ("links", "exports", "link_flags")
    return tuple(Binary(**{**row, **{k: tuple(row[k]) for k in lists if k in row}}) for row in rows)


HIP_DEBUG_FILE = "libamdhip64.so.7.debug"


def _find_cc() -> str:
    found = shutil.which("gcc") or shutil.which("cc")
    if not found:
        raise SystemExit("error: no C compiler found (gcc or cc); install gcc")
    return found


def _tool_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _TOOL_ENV_DROP}
    env["LC_ALL"] = "C"
    return env


def _run(cmd: list[str], *, cwd: Path) -> None:
    result = subprocess.run(
        cmd, cwd=cwd, env=_tool_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(
            f"error: {' '.join(cmd)} failed in the build directory:\n{result.stdout}{result.stderr}"
        )


def _compile_command(
    cc: str, binary: Binary, *, build: Path, debug: bool, output: str
) -> list[str]:
    source = f"{binary.output}.c"
    cmd = [cc, *_COMPILE_FLAGS, *_LINK_FLAGS, *binary.link_flags]
    if binary.soname is None:
        cmd += ["-fPIE", "-pie", "-nostartfiles", "start.c"]
    else:
        cmd += ["-fPIC", "-shared", f"-Wl,-soname,{binary.soname}"]
    if binary.version_node is not None:
        cmd.append(f"-Wl,--version-script={binary.output}.map")
    if binary.runpath is not None:
        cmd += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{binary.runpath}"]
    cmd += ["-o", output, source, *binary.links]
    # Debug info records the build directory: map it to "." so the output stays the same.
    cmd[1:1] = ["-g", f"-fdebug-prefix-map={build.resolve()}=."] if debug else ["-s"]
    return cmd


def _build_binary(cc: str, binary: Binary, build: Path) -> None:
    """Compile one file (its source is named after its output: the debug info records it)."""
    shutil.copyfile(SOURCES / binary.source, build / f"{binary.output}.c")
    if binary.version_node is not None:
        globs = " ".join(f"{name};" for name in binary.exports)
        script = f"{binary.version_node} {{\n  global: {globs}\n  local: *;\n}};\n"
        (build / f"{binary.output}.map").write_text(script, encoding="utf-8")
    command = _compile_command(cc, binary, build=build, debug=False, output=binary.output)
    _run(command, cwd=build)
    if binary.soname is not None:
        (build / binary.soname).symlink_to(binary.output)


def build_binaries(build: Path) -> None:
    """Compile every sample ELF file into ``build`` (plus the HIP debug file)."""
    cc = _find_cc()
    shutil.copytree(SOURCES / "include", build / "include")
    shutil.copyfile(SOURCES / "src" / "start.c", build / "start.c")
    listed = binaries()
    for binary in listed:
        _build_binary(cc, binary, build)
    hip = next(b for b in listed if b.soname == "libamdhip64.so.7")
    unstripped = f"{hip.output}.unstripped"
    command = _compile_command(cc, hip, build=build, debug=True, output=unstripped)
    _run(command, cwd=build)
    _run(["objcopy", "--only-keep-debug", unstripped, HIP_DEBUG_FILE], cwd=build)


# --- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One path below a stage root: a text/bytes file, a compiled file, or a symlink."""

    path: str
    data: bytes | None = None
    built: str | None = None  # a file of the build directory
    link: str | None = None
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True)
class Artifact:
    name: str
    roots: tuple[str, ...]  # as listed in artifact_manifest.txt
    files: tuple[tuple[str, Entry], ...] = ()  # (stage root, entry)


def _artifact(name: str, roots: tuple[str, ...], *entries: Entry, stage: str = "") -> Artifact:
    """An artifact whose ``entries`` lie below ``stage`` (by default its first stage root)."""
    return Artifact(name=name, roots=roots, files=tuple((stage or roots[0], e) for e in entries))


def _copy(path: str, source: str = "") -> Entry:
    """A file of SOURCES (``source``, by default ``path``), copied as it is."""
    return Entry(path=path, data=(SOURCES / (source or path)).read_bytes())


def _elf(path: str, built: str) -> Entry:
    return Entry(path=path, built=built, mode=0o755)


def _link(path: str, target: str) -> Entry:
    return Entry(path=path, link=target)


def _library(directory: str, real_name: str, soname: str) -> list[Entry]:
    """A shared library and its soname link, as TheRock's lib artifacts carry them."""
    return [_elf(f"{directory}/{real_name}", real_name), _link(f"{directory}/{soname}", real_name)]


def _tensile_data(target: str) -> bytes:
    """A few KB of bytes that differ per target and never change (stand-in for kernels)."""
    chunks = [f"TENSILE-SAMPLE {target}\n".encode()]
    counter = 0
    while sum(map(len, chunks)) < 4096:
        chunks.append(hashlib.sha256(f"{target}:{counter}".encode()).digest())
        counter += 1
    return b"".join(chunks)[:4096]


def _sysdeps() -> list[Artifact]:
    """The bundled system libraries: a symbol-versioned zlib stand-in."""
    lib = _library("lib/rocm_sysdeps/lib", "librocm_sysdeps_z.so.1.3.1", "librocm_sysdeps_z.so.1")
    return [_artifact("sysdeps_lib_generic", ("third-party/sysdeps/linux/stage",), *lib)]


def _core_runtime() -> list[Artifact]:
    """The HSA runtime (its RUNPATH correct), rocminfo and their development files."""
    roots = ("core/ROCR-Runtime/stage", "core/rocminfo/stage")

    def runtime(component: str, *entries: Entry, stage: str = "") -> Artifact:
        return _artifact(f"core-runtime_{component}_generic", roots, *entries, stage=stage)

    return [
        runtime("lib", *_library("lib", "libhsa-runtime64.so.1.15.0", "libhsa-runtime64.so.1")),
        runtime("run", _elf("bin/rocminfo", "rocminfo"), stage=roots[1]),
        runtime(
            "dev",
            _copy("include/hsa/hsa.h"),
            _link("lib/libhsa-runtime64.so", "libhsa-runtime64.so.1"),
            _copy("lib/cmake/hsa-runtime64/hsa-runtime64-config.cmake"),
        ),
    ]


def _hip() -> list[Artifact]:
    """HIP in every component (lib, run, dev, dbg, doc, test), and an empty OpenCL artifact."""
    # The hipcc stage root is listed as in TheRock's manifests but gets no files in the sample.
    roots = ("core/clr/stage", "core/hipcc/stage")

    def hip(component: str, *entries: Entry) -> Artifact:
        return _artifact(f"core-hip_{component}_generic", roots, *entries)

    return [
        hip(
            "lib",
            *_library("lib", "libamdhip64.so.7.1.25000", "libamdhip64.so.7"),
            *_library("lib", "libhiprtc.so.7.1.25000", "libhiprtc.so.7"),
        ),
        hip("run", _elf("bin/hipconfig", "hipconfig")),
        hip(
            "dev",
            _copy("include/hip/hip_runtime.h"),
            _copy("include/hip/hiprtc.h"),
            _copy("lib/cmake/hip/hip-config.cmake"),
            _copy("lib/cmake/hip/hip-config-version.cmake"),
            _link("lib/libamdhip64.so", "libamdhip64.so.7"),
            _link("lib/libhiprtc.so", "libhiprtc.so.7"),
            _copy("lib/libamdhip64_static.so", "ld/libamdhip64_static.ld"),
        ),
        hip("dbg", Entry(path=f"lib/.debug/{HIP_DEBUG_FILE}", built=HIP_DEBUG_FILE)),
        hip("doc", _copy("share/doc/hip/README.md")),
        hip("test", _elf("bin/hip_unit_tests", "hip_unit_tests")),
        _artifact("core-ocl_lib_generic", ("core/ocl-clr/stage",)),
    ]


def _compiler() -> list[Artifact]:
    """AMD LLVM: clang, symlinked drivers and a symlink to a directory."""
    return [
        _artifact(
            "amd-llvm_run_generic",
            ("compiler/amd-llvm/stage",),
            _elf("lib/llvm/bin/clang", "clang"),
            _link("lib/llvm/bin/clang++", "clang"),
            _link("bin/amdclang", "../lib/llvm/bin/clang"),
            _copy("lib/llvm/lib/clang/20/include/stddef.h"),
            _link("lib/llvm/lib/clang/current", "20"),
        )
    ]


def _generic_math_libraries() -> list[Artifact]:
    """Math libraries built once for every family: rocRAND and the header-only rocPRIM."""
    rand = _library("lib", "librocrand.so.1.1.0", "librocrand.so.1")
    return [
        _artifact("rand_lib_generic", ("math-libs/rocRAND/stage",), *rand),
        _artifact(
            "prim_dev_generic", ("math-libs/rocPRIM/stage",), _copy("include/rocprim/rocprim.hpp")
        ),
    ]


def _family_libraries(family: str, targets: tuple[str, ...]) -> list[Artifact]:
    """One family's rocBLAS (lib with per-target kernels, dev, test) and an empty rocFFT."""
    # hipBLAS is listed like in TheRock's blas manifests but gets no files in the sample.
    roots = ("math-libs/BLAS/rocBLAS/stage", "math-libs/BLAS/hipBLAS/stage")
    kernels = "lib/rocblas/library"
    manifest = "".join(f"TensileLibrary_{target}.dat\n" for target in targets)
    return [
        _artifact(
            f"blas_lib_{family}",
            roots,
            *_library("lib", "librocblas.so.5.1.0", "librocblas.so.5"),
            Entry(path=f"{kernels}/TensileManifest.txt", data=manifest.encode()),
            *(
                Entry(path=f"{kernels}/TensileLibrary_{t}.dat", data=_tensile_data(t))
                for t in targets
            ),
        ),
        _artifact(
            f"blas_dev_{family}",
            roots,
            _copy("include/rocblas/rocblas.h"),
            _link("lib/librocblas.so", "librocblas.so.5"),
            _copy("lib/cmake/rocblas/rocblas-config.cmake"),
        ),
        _artifact(f"blas_test_{family}", roots, _elf("bin/rocblas-test", "rocblas-test")),
        _artifact(f"fft_lib_{family}", ("math-libs/rocFFT/stage", "math-libs/hipFFT/stage")),
    ]


def artifacts() -> list[Artifact]:
    """Every artifact of the sample: generic, per family, then those programs.py adds."""
    result = [*_sysdeps(), *_core_runtime(), *_hip(), *_compiler(), *_generic_math_libraries()]
    for family, targets in FAMILIES.items():
        result += _family_libraries(family, targets)
    result.append(_artifact("miopen_lib_gfx94X-dcgpu", ("ml-libs/MIOpen/stage",)))
    # Console-script programs (SOURCES/programs.toml), license files (SOURCES/licenses.toml).
    add_programs = runpy.run_path(str(SOURCES / "programs.py"))["add_programs"]
    with_programs: list[Artifact] = add_programs(result, Artifact, Entry)
    return with_programs


def generate(out: Path) -> None:
    """Write the sample into the existing, empty directory ``out``."""
    with tempfile.TemporaryDirectory(prefix="sample-artifacts-build-") as temp:
        build = Path(temp)
        build_binaries(build)
        for artifact in artifacts():
            root = out / artifact.name
            root.mkdir()
            manifest = "".join(f"{stage}\n" for stage in artifact.roots)
            _write(root / "artifact_manifest.txt", manifest.encode("utf-8"), 0o644)
            for stage, entry in artifact.files:
                path = root / stage / entry.path
                path.parent.mkdir(parents=True, exist_ok=True)
                if entry.link is not None:
                    path.symlink_to(entry.link)
                elif entry.built is not None:
                    _write(path, (build / entry.built).read_bytes(), entry.mode)
                else:
                    assert entry.data is not None
                    _write(path, entry.data, entry.mode)
    _write(out / "README.md", (SOURCES / "rocm-artifacts-README.md").read_bytes(), 0o644)
    _normalise(out)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _normalise(out: Path) -> None:
    """Fixed directory modes and one mtime for everything, deepest paths first."""
    for path in sorted(_walk(out), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(out, (FIXED_MTIME, FIXED_MTIME))


def _walk(top: Path) -> Iterator[Path]:
    """Every path below ``top`` (not following symlinks), sorted."""
    for path in sorted(top.iterdir()):
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


# --- check and command line ----------------------------------------------------------------


def describe(top: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (kind, detail); of a mode only the executable bit, all git records."""
    result = {}
    for path in _walk(top):
        rel = path.relative_to(top).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            result[rel] = ("symlink", str(path.readlink()))
        elif stat.S_ISDIR(info.st_mode):
            result[rel] = ("dir", "")
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            executable = "executable" if info.st_mode & 0o100 else "not executable"
            result[rel] = ("file", f"{executable}, sha256 {digest}")
    return result


def compare(expected: Path, actual: Path) -> list[str]:
    """Differences between two trees, one line each (empty if they are the same)."""
    want, have = describe(expected), describe(actual)
    lines = []
    for rel in sorted(want.keys() | have.keys()):
        if rel not in have:
            lines.append(f"only in {expected}: {rel}")
        elif rel not in want:
            lines.append(f"only in the fresh build: {rel}")
        elif want[rel] != have[rel]:
            lines.append(
                f"differs: {rel} ({expected}: {', '.join(want[rel])}; "
                f"fresh build: {', '.join(have[rel])})"
            )
    return lines


def _prepare_out(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    present = sorted(out.iterdir())
    if not present:
        return
    if not force:
        raise SystemExit(f"error: --out {out} is not empty; pass --force to replace its content")
    strangers = [
        p.name
        for p in present
        if p.name != "README.md"
        and not (p.is_dir() and not p.is_symlink() and ARTIFACT_NAME.match(p.name))
    ]
    if strangers:
        raise SystemExit(
            f"error: --out {out} holds {', '.join(strangers)}, which is not part of "
            "a sample artifact tree; refusing to delete it (choose another --out)"
        )
    for path in present:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, metavar="DIR", help="write a fresh sample tree")
    action.add_argument("--check", type=Path, metavar="DIR", help="compare DIR with a fresh build")
    parser.add_argument(
        "--force", action="store_true", help="with --out: replace a sample's content"
    )
    args = parser.parse_args(argv)
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise SystemExit(
            "error: the sample holds x86_64 Linux ELF files; run this script on x86_64 Linux"
        )
    if args.out is not None:
        _prepare_out(args.out, force=args.force)
        generate(args.out)
        return 0
    if not args.check.is_dir():
        raise SystemExit(f"error: --check {args.check} is not a directory")
    with tempfile.TemporaryDirectory(prefix="sample-artifacts-check-") as temp:
        fresh = Path(temp) / "sample"
        fresh.mkdir()
        generate(fresh)
        differences = compare(args.check, fresh)
    for line in differences:
        print(line)
    if differences:
        print(
            f"{args.check} is out of date ({len(differences)} differences); regenerate it with "
            f"python scripts/make_sample_artifacts.py --out {args.check} --force",
            file=sys.stderr,
        )
        return 1
    print(f"{args.check} matches a fresh build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
