from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from _elfbuild import BASE_C, DEP_C, compile_elf, load_in_subprocess, sha256

from wheelyard.elf import closure, names, rpath
from wheelyard.elf import read as elf
from wheelyard.elf.closure import ShippedElf
from wheelyard.elf.read import ElfInfo
from wheelyard.errors import ClosureError, ElfError, LibraryNameError

CORE = "rocm-sdk-core"
CORE_DIR = "_rocm_sdk_core"
LIBS = "rocm-sdk-libraries-gfx120X-all"
LIBS_DIR = "_rocm_sdk_libraries_gfx120X_all"
DEPENDS = {LIBS: [CORE], CORE: []}
SYSTEM = closure.MANYLINUX_SYSTEM_LIBS


def _info(
    *,
    soname: str | None = None,
    needed: tuple[str, ...] = (),
    runpath: tuple[str, ...] = (),
    rpath: tuple[str, ...] = (),
    executable: bool = False,
    machine: str = "x86_64",
    bits: int = 64,
    glibc: tuple[int, int] | None = None,
) -> ElfInfo:
    return ElfInfo(
        machine=machine,
        bits=bits,
        elf_type="ET_DYN",
        is_executable=executable,
        soname=soname,
        needed=needed,
        rpath=rpath,
        runpath=runpath,
        glibc=glibc,
    )


def _core(path: str, **kwargs: Any) -> ShippedElf:
    return ShippedElf(wheel=CORE, install_dir=CORE_DIR, path=path, info=_info(**kwargs))


def _libs(path: str, **kwargs: Any) -> ShippedElf:
    return ShippedElf(wheel=LIBS, install_dir=LIBS_DIR, path=path, info=_info(**kwargs))


def _plan(
    files: list[ShippedElf], *, allow: frozenset[str] = frozenset()
) -> tuple[dict[tuple[str, str], tuple[str, ...]], closure.ClosureReport]:
    return closure.plan_runpaths(files, DEPENDS, system=SYSTEM, allow_external=allow)


HIP = _core(
    "lib/libamdhip64.so.7", soname="libamdhip64.so.7", needed=("libhsa-runtime64.so.1", "libc.so.6")
)
HSA = _core("lib/libhsa-runtime64.so.1", soname="libhsa-runtime64.so.1", needed=("libc.so.6",))
ROCBLAS = _libs(
    "lib/librocblas.so.5",
    soname="librocblas.so.5",
    needed=("libamdhip64.so.7", "libstdc++.so.6"),
    runpath=("/opt/rocm/lib",),
)
HIPBLAS = _libs(
    "lib/libhipblas.so.3", soname="libhipblas.so.3", needed=("librocblas.so.5", "libamdhip64.so.7")
)


def test_same_wheel_dependency_gets_origin() -> None:
    plan, report = _plan([HIP, HSA])
    assert plan[(CORE, "lib/libamdhip64.so.7")] == ("$ORIGIN",)
    assert plan[(CORE, "lib/libhsa-runtime64.so.1")] == ()
    by_path = {f.path: dict(f.needed) for f in report.files}
    assert by_path["lib/libamdhip64.so.7"] == {
        "libhsa-runtime64.so.1": f"wheel:{CORE}",
        "libc.so.6": "system",
    }


def test_cross_wheel_dependency_gets_in_tree_and_installed_entries() -> None:
    plan, _ = _plan([HIP, HSA, ROCBLAS, HIPBLAS])
    # /opt/rocm/lib from the input is dropped.
    assert plan[(LIBS, "lib/librocblas.so.5")] == ("$ORIGIN", "$ORIGIN/../../_rocm_sdk_core/lib")
    assert plan[(LIBS, "lib/libhipblas.so.3")] == ("$ORIGIN", "$ORIGIN/../../_rocm_sdk_core/lib")


def test_entries_from_other_directories_are_relative_and_sorted() -> None:
    tool = _core("bin/rocminfo", executable=True, needed=("libhsa-runtime64.so.1",))
    plugin = _libs(
        "lib/rocblas/plugins/libplug.so",
        needed=("librocblas.so.5", "libhsa-runtime64.so.1", "libamdhip64.so.7"),
    )
    plan, _ = _plan([HIP, HSA, ROCBLAS, tool, plugin])
    assert plan[(CORE, "bin/rocminfo")] == ("$ORIGIN/../lib",)
    assert plan[(LIBS, "lib/rocblas/plugins/libplug.so")] == (
        "$ORIGIN/../..",
        "$ORIGIN/../../../../_rocm_sdk_core/lib",
    )


def test_transitive_dependencies_resolve() -> None:
    prof = ShippedElf(
        wheel="rocm-sdk-profiler",
        install_dir="_rocm_sdk_profiler",
        path="lib/libprof.so",
        info=_info(soname="libprof.so", needed=("libhipblas.so.3", "libamdhip64.so.7")),
    )
    depends = {**DEPENDS, "rocm-sdk-profiler": [LIBS]}
    plan, report = closure.plan_runpaths(
        [HIP, HSA, ROCBLAS, HIPBLAS, prof], depends, system=SYSTEM, allow_external=frozenset()
    )
    assert report.missing == ()
    assert plan[("rocm-sdk-profiler", "lib/libprof.so")] == (
        "$ORIGIN",
        "$ORIGIN/../../_rocm_sdk_core/lib",
        "$ORIGIN/../../_rocm_sdk_libraries_gfx120X_all/lib",
    )


def test_library_without_soname_resolves_by_file_name() -> None:
    plain = _core("lib/libplain.so")
    user = _core("lib/libuser.so.1", soname="libuser.so.1", needed=("libplain.so",))
    plan, report = _plan([plain, user])
    assert report.missing == ()
    assert plan[(CORE, "lib/libuser.so.1")] == ("$ORIGIN",)


def test_executable_without_soname_provides_nothing() -> None:
    exe = _core("lib/libfake.so", executable=True)
    user = _core("lib/libuser.so.1", needed=("libfake.so",))
    _, report = _plan([exe, user])
    assert report.missing == ((CORE, "lib/libuser.so.1", "libfake.so"),)


def test_other_machine_does_not_satisfy() -> None:
    arm = _core("lib/libarm.so.1", soname="libarm.so.1", machine="aarch64")
    user = _core("lib/libuser.so.1", needed=("libarm.so.1",))
    _, report = _plan([arm, user])
    assert report.missing == ((CORE, "lib/libuser.so.1", "libarm.so.1"),)


def test_missing_library_fails_the_check_naming_it() -> None:
    lonely = _libs("lib/libx.so.1", soname="libx.so.1", needed=("libnowhere.so.2", "libc.so.6"))
    plan, report = _plan([lonely])
    assert report.missing == ((LIBS, "lib/libx.so.1", "libnowhere.so.2"),)
    assert report.totals["missing"] == 1
    assert plan[(LIBS, "lib/libx.so.1")] == ()
    with pytest.raises(ClosureError, match=f"{LIBS}/lib/libx.so.1: needs libnowhere.so.2"):
        closure.check_closure(report)


def test_library_in_a_wheel_that_is_no_dependency_is_missing_with_a_hint() -> None:
    needs_libs = _core("lib/libbad.so", needed=("librocblas.so.5",))
    _, report = _plan([needs_libs, ROCBLAS, HIP, HSA])
    assert report.missing == ((CORE, "lib/libbad.so", "librocblas.so.5"),)
    with pytest.raises(ClosureError, match=f"shipped by {LIBS}, not a dependency of {CORE}"):
        closure.check_closure(report)


def test_allowed_external_library_is_reported_not_missing() -> None:
    lib = _core("lib/libdrmuser.so", needed=("libdrm.so.2", "libnuma.so.1"))
    _, report = _plan([lib], allow=frozenset({"libdrm.so.2"}))
    assert report.external == ("libdrm.so.2",)
    assert report.missing == ((CORE, "lib/libdrmuser.so", "libnuma.so.1"),)
    assert dict(report.files[0].needed)["libdrm.so.2"] == "external"
    _, report = _plan([lib], allow=frozenset({"libdrm.so.2", "libnuma.so.1"}))
    closure.check_closure(report)  # nothing missing: no error
    assert report.totals["external"] == 2


def test_existing_origin_runpath_is_kept_as_is() -> None:
    kept = _core(
        "lib/libamdhip64.so.7",
        soname="libamdhip64.so.7",
        needed=("libhsa-runtime64.so.1",),
        runpath=("$ORIGIN/", "${ORIGIN}/../lib"),
    )
    plan, _ = _plan([kept, HSA])
    assert plan[(CORE, "lib/libamdhip64.so.7")] == ("$ORIGIN/", "${ORIGIN}/../lib")


def test_harmless_origin_runpath_of_a_file_needing_no_wheel_is_kept() -> None:
    leaf = _core("lib/libleaf.so", needed=("libc.so.6",), runpath=("$ORIGIN",))
    stale = _core("lib/libstale.so", needed=("libc.so.6",), runpath=("/opt/rocm/lib",))
    plan, _ = _plan([leaf, stale])
    assert plan[(CORE, "lib/libleaf.so")] == ("$ORIGIN",)
    assert plan[(CORE, "lib/libstale.so")] == ()


def test_existing_runpath_missing_the_devel_layout_is_replaced() -> None:
    # Works in site-packages, but not in the merged devel tree: replaced.
    only_installed = _libs(
        "lib/librocblas.so.5",
        soname="librocblas.so.5",
        needed=("libamdhip64.so.7",),
        runpath=("$ORIGIN/../../_rocm_sdk_core/lib",),
    )
    plan, _ = _plan([only_installed, HIP, HSA])
    assert plan[(LIBS, "lib/librocblas.so.5")] == (
        "$ORIGIN",
        "$ORIGIN/../../_rocm_sdk_core/lib",
    )


def test_existing_runpath_with_absolute_entry_is_replaced() -> None:
    mixed = _core(
        "lib/libamdhip64.so.7",
        needed=("libhsa-runtime64.so.1",),
        runpath=("$ORIGIN", "/opt/rocm/lib"),
    )
    escaping = _core(
        "lib/libamdhip64.so.6",
        needed=("libhsa-runtime64.so.1",),
        runpath=("$ORIGIN", "$ORIGIN/../../../../../usr/lib"),
    )
    plan, _ = _plan([mixed, escaping, HSA])
    assert plan[(CORE, "lib/libamdhip64.so.7")] == ("$ORIGIN",)
    assert plan[(CORE, "lib/libamdhip64.so.6")] == ("$ORIGIN",)


def test_rpath_only_file_keeps_its_origin_entries_as_runpath() -> None:
    old = _core("lib/libold.so", needed=("libhsa-runtime64.so.1",), rpath=("$ORIGIN",))
    plan, _ = _plan([old, HSA])
    assert plan[(CORE, "lib/libold.so")] == ("$ORIGIN",)


def test_plan_does_not_depend_on_input_order() -> None:
    files = [HIP, HSA, ROCBLAS, HIPBLAS]
    first = _plan(files)
    second = _plan(list(reversed(files)))
    assert first == second
    assert [f.path for f in first[1].files] == [
        "lib/libamdhip64.so.7",
        "lib/libhsa-runtime64.so.1",
        "lib/libhipblas.so.3",
        "lib/librocblas.so.5",
    ]


def test_report_json_shape() -> None:
    lonely = _libs("lib/libx.so.1", needed=("libnowhere.so.2",))
    gpu = _libs("lib/rocblas/library/kernels.co", machine="amdgpu")
    _, report = _plan([HIP, HSA, ROCBLAS, lonely, gpu], allow=frozenset())
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == 1
    assert data["totals"] == {
        "files": 5,
        "needed": 6,
        "same_wheel": 1,
        "dependency": 1,
        "system": 3,
        "external": 0,
        "missing": 1,
    }
    assert data["missing"] == [
        {"wheel": LIBS, "path": "lib/libx.so.1", "needed": "libnowhere.so.2"}
    ]
    rocblas = next(f for f in data["files"] if f["path"] == "lib/librocblas.so.5")
    assert rocblas == {
        "wheel": LIBS,
        "path": "lib/librocblas.so.5",
        "needed": {"libamdhip64.so.7": f"wheel:{CORE}", "libstdc++.so.6": "system"},
        "runpath": ["$ORIGIN", "$ORIGIN/../../_rocm_sdk_core/lib"],
    }


def test_system_list_is_the_manylinux_policy() -> None:
    assert {
        "libc.so.6",
        "libm.so.6",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "ld-linux-x86-64.so.2",
    } <= SYSTEM
    assert "libnuma.so.1" not in SYSTEM
    assert "libdrm.so.2" not in SYSTEM


@pytest.mark.parametrize(
    ("glibcs", "expected"),
    [
        ([(2, 17), None], "manylinux_2_28_x86_64"),
        ([(2, 34), (2, 2)], "manylinux_2_34_x86_64"),
        ([None], "manylinux_2_28_x86_64"),
    ],
)
def test_platform_tag(glibcs: list[tuple[int, int] | None], expected: str) -> None:
    infos = [_info(glibc=g) for g in glibcs]
    assert closure.platform_tag(infos, min_glibc=(2, 28)) == expected


def test_platform_tag_arch_comes_from_the_machine() -> None:
    infos = [_info(machine="aarch64", glibc=(2, 17))]
    assert closure.platform_tag(infos, min_glibc=(2, 17)) == "manylinux_2_17_aarch64"


def test_platform_tag_without_host_elf_is_none() -> None:
    assert closure.platform_tag([], min_glibc=(2, 28)) is None
    # GPU code objects are ELF too, but say nothing about the host platform.
    gpu = [_info(machine="amdgpu")]
    assert closure.platform_tag(gpu, min_glibc=(2, 28)) is None
    mixed = [_info(machine="amdgpu"), _info(glibc=(2, 30))]
    assert closure.platform_tag(mixed, min_glibc=(2, 28)) == "manylinux_2_30_x86_64"


def test_platform_tag_refuses_mixed_machines() -> None:
    infos = [_info(), _info(machine="aarch64")]
    with pytest.raises(ElfError, match=r"rocm-sdk-core.*aarch64, x86_64"):
        closure.platform_tag(infos, min_glibc=(2, 28), wheel="rocm-sdk-core")


def _shipped(site: Path, wheel: str, install_dir: str, path: str) -> ShippedElf:
    info = elf.read_elf(site / install_dir / path)
    assert info is not None
    return ShippedElf(wheel=wheel, install_dir=install_dir, path=path, info=info)


def test_plan_applied_to_real_libraries_loads_in_both_layouts(tmp_path: Path) -> None:
    """Two wheels installed side by side in site-packages, and the merged (devel) tree."""
    build = tmp_path / "build"
    base = compile_elf(build / "libbase.so.1", BASE_C, soname="libbase.so.1")
    dep = compile_elf(
        build / "libdep.so.1", DEP_C, soname="libdep.so.1", needs=[base], rpath="/opt/rocm/lib"
    )
    site = tmp_path / "site-packages"
    (site / CORE_DIR / "lib").mkdir(parents=True)
    (site / LIBS_DIR / "lib").mkdir(parents=True)
    shutil.copy(base, site / CORE_DIR / "lib" / "libbase.so.1")
    shutil.copy(dep, site / LIBS_DIR / "lib" / "libdep.so.1")
    files = [
        _shipped(site, CORE, CORE_DIR, "lib/libbase.so.1"),
        _shipped(site, LIBS, LIBS_DIR, "lib/libdep.so.1"),
    ]
    plan, report = _plan(files)
    closure.check_closure(report)
    for item in files:
        rpath.set_runpath(site / item.install_dir / item.path, plan[(item.wheel, item.path)])
    installed = site / LIBS_DIR / "lib" / "libdep.so.1"
    result = load_in_subprocess(installed, "dep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    devel = tmp_path / "devel" / "root" / "lib"
    devel.mkdir(parents=True)
    for item in files:
        shutil.copy(site / item.install_dir / item.path, devel / Path(item.path).name)
    result = load_in_subprocess(devel / "libdep.so.1", "dep")
    assert result.returncode == 0, result.stderr
    # Planned again, the patched files are already right: left byte-identical.
    digest = sha256(installed)
    again = [
        _shipped(site, CORE, CORE_DIR, "lib/libbase.so.1"),
        _shipped(site, LIBS, LIBS_DIR, "lib/libdep.so.1"),
    ]
    plan_again, _ = _plan(again)
    assert rpath.set_runpath(installed, plan_again[(LIBS, "lib/libdep.so.1")]) == "unchanged"
    assert sha256(installed) == digest


# Unsafe names and shadowing (wheelyard.elf.names).


@pytest.mark.parametrize(
    ("needed", "problem"),
    [
        ("../lib/libhack.so.1", "contains '/'"),
        ("/abs/libhack.so.1", "contains '/'"),
        ("", "is empty"),
        ("..", "is not a file name"),
        ("libtab\t.so", "contains control characters"),
    ],
)
def test_unsafe_needed_is_an_error_naming_file_and_wheel(needed: str, problem: str) -> None:
    item = ShippedElf(
        wheel=LIBS,
        install_dir=LIBS_DIR,
        path="lib/librpp.so.1",
        info=_info(soname="librpp.so.1", needed=("libc.so.6", needed)),
        origin="rpp_lib_gfx120X-all/lib/librpp.so.1",
    )
    with pytest.raises(LibraryNameError) as caught:
        names.check_names([HIP, item])
    text = str(caught.value)
    assert text.startswith(
        f"unsafe library names in ELF files: {LIBS}/lib/librpp.so.1 "
        "(from rpp_lib_gfx120X-all/lib/librpp.so.1): DT_NEEDED"
    )
    assert problem in text
    assert "\t" not in text


def test_unsafe_soname_is_an_error() -> None:
    with pytest.raises(LibraryNameError, match=r'DT_SONAME "x/libamdhip64.so.7" contains'):
        names.check_names([_core("lib/libamdhip64.so.7", soname="x/libamdhip64.so.7")])


def test_escape_sequences_are_shown_escaped() -> None:
    hostile = "lib\x1b]0;owned\x07\x1b[2J.so.1"
    with pytest.raises(LibraryNameError) as caught:
        names.check_names([_libs("lib/librpp.so.1", needed=(hostile,))])
    text = str(caught.value)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert r'"lib\x1b]0;owned\x07\x1b[2J.so.1" contains control characters' in text


def test_safe_names_pass() -> None:
    names.check_names([HIP, HSA, ROCBLAS, HIPBLAS])
    names.check_shadowing([HIP, HSA, ROCBLAS, HIPBLAS])


def _in(family: str | None, item: ShippedElf, origin: str = "") -> ShippedElf:
    return ShippedElf(
        wheel=item.wheel if family is None else f"{item.wheel}-{family}",
        install_dir=item.install_dir,
        path=item.path,
        info=item.info,
        family=family,
        origin=origin,
    )


def test_soname_shadowing_a_core_library_is_an_error_naming_both() -> None:
    shadow = _libs("lib/rpp/libamdhip64.so.7", soname="libamdhip64.so.7")
    files = [
        _in(None, HIP, "core-hip_lib_generic/lib/libamdhip64.so.7.1.25000"),
        _in("gfx120X-all", shadow, "rpp_lib_gfx120X-all/lib/rpp/librpp.so.1"),
        _in("gfx110X-all", ROCBLAS),
    ]
    with pytest.raises(LibraryNameError) as caught:
        names.check_shadowing(files)
    text = str(caught.value)
    assert "\n" not in text.split("\n  -> ")[0], "one conflict: one line"
    assert text.startswith(
        "library names provided by more than one file of a wheel set: libamdhip64.so.7 in the "
        "wheel set of gfx120X-all: rocm-sdk-core/lib/libamdhip64.so.7 (from "
        "core-hip_lib_generic/lib/libamdhip64.so.7.1.25000) and "
        f"{LIBS}-gfx120X-all/lib/rpp/libamdhip64.so.7 (from "
        "rpp_lib_gfx120X-all/lib/rpp/librpp.so.1)"
    )


def test_file_name_of_a_library_without_soname_also_counts() -> None:
    shadow = _libs("lib/libhsa-runtime64.so.1")  # no SONAME: found by its file name
    with pytest.raises(LibraryNameError, match="libhsa-runtime64.so.1 in the wheel set of"):
        names.check_shadowing([HSA, shadow])


def test_same_soname_in_different_families_or_machines_is_fine() -> None:
    # Every family's libraries wheel ships its own librocblas.so.5; they never install together.
    names.check_shadowing([_in("gfx110X-all", ROCBLAS), _in("gfx120X-all", ROCBLAS), HIP])
    arm = _core("lib/aarch64/libamdhip64.so.7", soname="libamdhip64.so.7", machine="aarch64")
    names.check_shadowing([HIP, arm])
    # Executables and GPU code objects provide no library.
    exe = _core("bin/libamdhip64.so.7", executable=True)
    code = _core("lib/kernels/libamdhip64.so.7", machine="amdgpu")
    names.check_shadowing([HIP, exe, code])


def test_generic_conflicts_are_reported_once_with_every_set() -> None:
    twin = _core("lib/other/libamdhip64.so.7", soname="libamdhip64.so.7")
    files = [HIP, twin, _in("gfx110X-all", ROCBLAS), _in("gfx120X-all", ROCBLAS)]
    with pytest.raises(LibraryNameError) as caught:
        names.check_shadowing(files)
    assert "in the wheel set of gfx110X-all, gfx120X-all: rocm-sdk-core/lib/libamdhip64" in str(
        caught.value
    )
    assert str(caught.value).count("libamdhip64.so.7 in the wheel set") == 1


def test_missing_names_are_printed_escaped() -> None:
    _, report = _plan([_libs("lib/librpp.so.1", needed=("libnot\x1b[2Jthere.so",))])
    with pytest.raises(ClosureError) as caught:
        closure.check_closure(report)
    assert "\x1b" not in str(caught.value)
    assert r"libnot\x1b[2Jthere.so" in str(caught.value)
