"""The rocm_sdk runtime's command and Python API (TheRock's names and behaviour), and the profile
data it is built from (the ``[[library]]`` table, console-script flags, ``_dist_info.json``).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from _rocm_sdk_env import (
    CORE,
    DEVEL,
    DISTS,
    FAMILY,
    LIBS,
    OTHER,
    PROFILE,
    REPO,
    TARGETS,
    TEMPLATE,
    VERSION,
    Env,
    Native,
    check_ok,
    executable,
    make_env,
)

from wheelyard.build.meta import dist_info_document
from wheelyard.errors import ProfileError
from wheelyard.profile import load_profile

# -- templates ----------------------------------------------------------------------------------


def test_templates_are_python39_and_packaging_has_no_init() -> None:
    files = sorted(TEMPLATE.rglob("*.py"))
    names = {p.relative_to(TEMPLATE).as_posix() for p in files}
    assert names >= {"__init__.py", "__main__.py", "_dist_info.py", "cli.py", "tests/__init__.py"}
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
    assert not (REPO / "packaging" / "__init__.py").exists()
    assert not (REPO / "packaging" / "rocm" / "__init__.py").exists()


# -- the rocm-sdk command -------------------------------------------------------------------------


def test_version_targets_and_usage(env: Env) -> None:
    assert check_ok(env.cli("version")).strip() == VERSION
    assert check_ok(env.cli("--version")).strip() == VERSION
    assert check_ok(env.cli("targets")).strip() == ";".join(TARGETS)
    usage = env.cli()
    assert usage.returncode == 2
    assert "init" in usage.stdout


HELP_CODE = """
import argparse
from rocm_sdk import cli

def walk(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in sorted(action.choices.items()):
                yield from ((name + " " + flag, text) for flag, text in walk(sub))
        elif action.option_strings:
            yield "/".join(action.option_strings), action.help

for flag, text in walk(cli._parser()):
    print(flag, "|", text)
"""


def test_every_flag_has_help(env: Env) -> None:
    rows = dict(line.split(" | ") for line in check_ok(env.code(HELP_CODE)).splitlines())
    for flag in ("--version", "init --quiet", "path --root", "path --bin", "path --cmake"):
        assert flag in rows, rows
    assert "test --junitxml" in rows
    assert all(text not in ("", "None") for text in rows.values()), rows
    for command in ("path", "init", "test", "version", "targets"):
        assert "usage: rocm-sdk " + command in check_ok(env.cli(command, "--help"))


def test_main_imports_without_running(env: Env) -> None:
    result = env.code("from rocm_sdk.__main__ import main\nprint(callable(main))")
    assert (result.returncode, result.stdout, result.stderr) == (0, "True\n", "")


def test_path_expands_devel_first(env: Env) -> None:
    result = env.cli("path", "--cmake")
    assert check_ok(result).strip() == str(env.devel / "root" / "lib" / "cmake")
    assert "expanded" in result.stderr
    assert not env.tar.exists()
    again = env.cli("path", "--root")
    assert check_ok(again).strip() == str(env.devel / "root")
    assert again.stderr == ""
    assert check_ok(env.cli("path", "--bin")).strip() == str(env.devel / "root" / "bin")


def test_path_without_devel_names_the_extra(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, devel=False)
    result = env.cli("path", "--root")
    assert result.returncode == 1
    assert f"rocm[devel]=={VERSION}" in result.stderr
    assert result.stdout == ""


def test_init_quiet_prints_nothing_and_records_the_files(env: Env) -> None:
    before = env.record(DISTS["devel"])
    result = env.cli("init", "--quiet")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not env.tar.exists()
    added = env.record(DISTS["devel"]) - before
    expanded = {
        Path(d, n).relative_to(env.site).as_posix()
        for d, _, files in os.walk(env.devel / "root")
        for n in files
    }
    assert expanded
    assert added == expanded | {f"{DEVEL}/.init.lock"}
    again = env.cli("init", "--quiet")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert env.record(DISTS["devel"]) - before == added


# -- the Python API -------------------------------------------------------------------------------


def test_find_libraries(env: Env) -> None:
    out = check_ok(
        env.code("import rocm_sdk\nfor p in rocm_sdk.find_libraries('core', 'x'): print(p)")
    )
    assert out.split() == [
        str(env.site / CORE / "lib/libcore.so.1"),
        str(env.site / LIBS / "lib/libx.so.1"),
    ]


@pytest.mark.parametrize(
    ("names", "error"),
    [
        ("'rocfoo'", "ModuleNotFoundError: Unknown rocm library 'rocfoo' .*knows: absent, core"),
        ("'absent'", "FileNotFoundError: .*'absent'.* build does not include it"),
    ],
)
def test_find_libraries_errors(env: Env, names: str, error: str) -> None:
    result = env.code(f"import rocm_sdk\nrocm_sdk.find_libraries({names})")
    assert result.returncode == 1
    assert re.search(error, result.stderr), result.stderr


def test_find_libraries_skips_an_absent_optional_library(env: Env) -> None:
    out = check_ok(env.code("import rocm_sdk\nprint(rocm_sdk.find_libraries('maybe', 'core'))"))
    assert "libcore.so.1" in out
    assert "maybe" not in out


def test_find_libraries_of_a_missing_wheel_names_the_extra(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, libraries=False)
    result = env.code("import rocm_sdk\nrocm_sdk.find_libraries('x', 'core')")
    assert "ModuleNotFoundError" in result.stderr
    assert f'pip install "rocm[libraries]=={VERSION}"' in result.stderr


def test_find_libraries_of_a_damaged_wheel(env: Env) -> None:
    (env.site / LIBS / "lib" / "libx.so.1").unlink()
    result = env.code("import rocm_sdk\nrocm_sdk.find_libraries('x')")
    assert "FileNotFoundError" in result.stderr
    assert "the installed rocm-sdk-libraries-gfx120X-all is damaged" in result.stderr


def test_damaged_build_information_is_an_import_error(env: Env) -> None:
    (env.site / "rocm_sdk" / "_dist_info.json").write_text("{not json")
    result = env.code("import rocm_sdk")
    assert result.returncode == 1
    assert "ImportError: " in result.stderr
    assert "_dist_info.json: cannot read the build information" in result.stderr


LOADED = (
    "import rocm_sdk\n{call}\n"
    "maps = open('/proc/self/maps').read()\n"
    "print(sorted({{n for n in ('libcore.so.1', 'libx.so.1') if n in maps}}),"
    " sorted(rocm_sdk._ALL_CDLLS))\n"
)


@pytest.mark.parametrize(
    ("call", "env_value", "loaded", "cached"),
    [
        ("rocm_sdk.initialize_process()", "", [], []),
        ("rocm_sdk.initialize_process()", " x ;", ["libcore.so.1", "libx.so.1"], ["x"]),
        ("rocm_sdk.initialize_process()", ";,", [], []),
        ("rocm_sdk.initialize_process()", "x,core", ["libcore.so.1", "libx.so.1"], ["core", "x"]),
        ("rocm_sdk.initialize_process(env_override=False)", "x", [], []),
        (
            "rocm_sdk.initialize_process(preload_shortnames=['x'], rtld_global=False)",
            "",
            ["libcore.so.1", "libx.so.1"],
            ["x"],
        ),
        (
            "rocm_sdk.initialize_process(preload_shortnames=['core'], future=1)",
            "",
            ["libcore.so.1"],
            ["core"],
        ),
        ("rocm_sdk.initialize_process(preload_shortnames=[])", "", [], []),
        ("rocm_sdk.preload_libraries('x', 'x', 'maybe')", "", ["libcore.so.1", "libx.so.1"], ["x"]),
    ],
)
def test_initialize_process_preloads(
    env: Env, call: str, env_value: str, loaded: list[str], cached: list[str]
) -> None:
    # libx needs libcore: loading it pulls libcore in through its RUNPATH.
    out = check_ok(env.code(LOADED.format(call=call), {"ROCM_SDK_PRELOAD_LIBRARIES": env_value}))
    assert out.strip() == f"{loaded!r} {cached!r}"


def test_a_bad_preload_variable_is_a_runtime_error(env: Env) -> None:
    code = (
        "import rocm_sdk\ntry:\n    rocm_sdk.initialize_process()\n"
        "except RuntimeError as e:\n    print(type(e.__cause__).__name__, e)\n"
    )
    out = check_ok(env.code(code, {"ROCM_SDK_PRELOAD_LIBRARIES": "core;rocfoo"}))
    assert out.startswith("ModuleNotFoundError Could not preload")
    assert "ROCM_SDK_PRELOAD_LIBRARIES='core;rocfoo'" in out


VERSION_CHECK = (
    "import re, warnings, rocm_sdk\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    rocm_sdk.initialize_process(check_version={check}, fail_on_version_mismatch={fail})\n"
    "print([w.category.__name__ for w in caught])\n"
)


@pytest.mark.parametrize(
    ("check", "warned"),
    [
        ("'7.10.*'", []),
        ("'7.10.0.dev0'", []),
        ("'*'", []),
        ("''", []),  # falsy: no check, as in TheRock
        (r"re.compile(r'7\.10\.0\.dev\d+')", []),
        ("re.compile('7.10')", []),  # a pattern is applied with re.match: a prefix is enough
        ("'7.9.*'", ["UserWarning"]),
        ("'7.10'", ["UserWarning"]),  # a string must match the whole version
        ("re.compile('7.9')", ["UserWarning"]),
    ],
)
def test_version_check_warns_on_mismatch(env: Env, check: str, warned: list[str]) -> None:
    out = check_ok(env.code(VERSION_CHECK.format(check=check, fail=False)))
    assert out.strip() == repr(warned)


@pytest.mark.parametrize(("check", "shown"), [("'8.*'", "'8.*'"), ("re.compile('8')", "'8'")])
def test_version_mismatch_can_fail(env: Env, check: str, shown: str) -> None:
    result = env.code(VERSION_CHECK.format(check=check, fail=True))
    assert result.returncode == 1
    assert (
        f"RuntimeError: The program was compiled against a ROCm version matching {shown}, but "
        f"the ROCm installed in this Python environment is version {VERSION}."
    ) in result.stderr


# -- _dist_info and the target family -------------------------------------------------------------

DIST_INFO_API = (
    "from rocm_sdk import _dist_info as di\n"
    "libs = di.ALL_PACKAGES['libraries']\n"
    "print(sorted(di.ALL_PACKAGES), list(di.ALL_LIBRARIES))\n"
    "print(libs.is_target_specific, libs.get_py_package_name('gfx120X-all'),"
    " libs.get_dist_package_require('gfx942:xnack+'), libs.has_py_package('gfx120X-all'))\n"
    "print(di.ALL_PACKAGES['core'].get_py_package_name(), di.ALL_PACKAGES['meta'].required,"
    " repr(di.ALL_LIBRARIES['core']))\n"
    "print(di.build_install_requires('gfx120X-all'), di.build_per_target_extras(),"
    " repr(di.get_target_family_platform_marker('gfx120X-all')))\n"
    "print(di.DEFAULT_TARGET_FAMILY, di.AVAILABLE_TARGET_FAMILIES,"
    " repr(di.PY_PACKAGE_SUFFIX_NONCE))\n"
)


def test_dist_info_has_therocks_names(env: Env) -> None:
    lines = check_ok(env.code(DIST_INFO_API)).splitlines()
    assert lines == [
        "['core', 'devel', 'libraries', 'meta', 'profiler'] ['core', 'x', 'absent', 'maybe']",
        f"True {LIBS} rocm-sdk-libraries-gfx942=={VERSION} True",
        f"{CORE} True core(package=rocm-sdk-core, so_pattern='libcore.so*', "
        "dll_pattern='core*.dll')",
        f"['rocm-sdk-core=={VERSION}'] {{}} ''",
        f"{FAMILY} ['{FAMILY}'] ''",
    ]


FAMILY_CODE = (
    "from rocm_sdk import _dist_info as di\n"
    "try:\n    print(di.determine_target_family())\n"
    "except ValueError as e:\n    print('ValueError', e)\n"
)


def _fake_offload_arch(env: Env, output: str) -> Path:
    """An ``offload-arch`` in the venv's bin that reports ``output`` and leaves a mark."""
    mark = env.root / "offload-arch-ran"
    executable(env.venv / "bin" / "offload-arch", f"#!/bin/sh\ntouch '{mark}'\necho '{output}'\n")
    return mark


@pytest.mark.parametrize(
    ("families", "variable", "reported", "expected", "discovered"),
    [
        ((FAMILY,), None, "gfx1100", FAMILY, False),  # one family: nothing to discover
        ((FAMILY,), FAMILY, "gfx1100", FAMILY, False),
        ((FAMILY,), OTHER, "gfx1100", f"ValueError target family '{OTHER}'", False),
        ((FAMILY, OTHER), None, "gfx1101\ngfx1101", OTHER, True),
        ((FAMILY, OTHER), None, "gfx90a", FAMILY, True),  # not covered: the default
        ((FAMILY, OTHER), OTHER, "gfx1200", OTHER, False),
    ],
)
def test_determine_target_family(
    tmp_path: Path,
    native: Native,
    families: tuple[str, ...],
    variable: str | None,
    reported: str,
    expected: str,
    discovered: bool,
) -> None:
    env = make_env(tmp_path, native, families=families)
    mark = _fake_offload_arch(env, reported)
    extra = {}
    if variable is not None:
        extra["ROCM_SDK_TARGET_FAMILY"] = variable
    out = check_ok(env.code(FAMILY_CODE, extra)).strip()
    assert out.startswith(expected), out
    assert mark.exists() is discovered


def test_discovery_explains_itself_only_when_verbose(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, families=(FAMILY, OTHER))
    executable(env.venv / "bin" / "offload-arch", "#!/bin/sh\necho 'no GPU'\nexit 1\n")
    code = "from rocm_sdk import _dist_info as di\nprint(di.discover_current_target_family())"
    quiet = env.code(code)
    assert (quiet.stdout, quiet.stderr) == ("None\n", "")
    verbose = env.code(code, {"ROCM_SDK_VERBOSE": "1"})
    assert verbose.stdout == "None\n"
    assert "offload-arch failed with exit code 1" in verbose.stderr


def test_find_libraries_uses_the_target_family(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, families=(FAMILY, OTHER))
    code = "import rocm_sdk\nrocm_sdk.find_libraries('x')"
    result = env.code(code, {"ROCM_SDK_TARGET_FAMILY": OTHER})
    assert "ModuleNotFoundError" in result.stderr  # gfx110X-all's libraries are not installed
    assert 'pip install "rocm[libraries]' in result.stderr
    check_ok(env.code(code, {"ROCM_SDK_TARGET_FAMILY": FAMILY}))


# -- the profile: [[library]], console scripts, and the document the build writes ----------------

LIBRARY_ROWS = """
[[library]]
name = "amdhip64"
package = "core"
linux = "lib/libamdhip64.so*"
windows = "bin/amdhip64*.dll"

[[library]]
name = "rocdxg"
package = "core"
linux = "lib/librocdxg*.so*"
optional = true
"""


def _profile_copy(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    target = tmp_path / "profile"
    shutil.copytree(PROFILE, target)
    packages = target / "packages.toml"
    packages.write_text(edit(packages.read_text()))
    return target


def test_rocm_profile_has_therocks_library_table_and_scripts() -> None:
    profile = load_profile(PROFILE)
    rows = {row.name: row for row in profile.libraries}
    therock = [
        "amdhip64",
        "hipfile",
        "hiprtc",
        "roctx64",
        "rocprofiler-sdk",
        "rocprofiler-sdk-roctx",
        "roctracer64",
        "rocm_sysdeps_liblzma",
        "rocm-openblas",
        "amd_comgr",
        "rocm_kpack",
        "rocm_smi64",
        "rocdecode",
        "rocjpeg",
        "amd_smi",
        "rocdxg",
        "rpp",
        "hipblas",
        "hipblaslt",
        "hipfft",
        "hiprand",
        "hipsparse",
        "hipsparselt",
        "hipsolver",
        "rccl",
        "miopen",
        "origami",
        "hipdnn",
    ]
    assert set(therock) <= set(rows)
    assert rows["miopen"].linux == "lib/libMIOpen.so*"
    assert rows["hipdnn"].package == "libraries"
    assert rows["rocdxg"].optional
    assert not rows["amdhip64"].optional
    assert rows["rocm-openblas"].linux == "lib/host-math/lib/librocm-openblas.so.*"
    scripts = {s.name: s for p in profile.packages for s in p.console_scripts}
    assert len(scripts) >= 30
    for name in ("amdclang++", "hipcc", "offload-arch", "amd-smi", "rocprofv3", "rocprof-sys-run"):
        assert name in scripts
    assert scripts["rocminfo"].needs_gpu
    assert not scripts["rocminfo"].needs_devel
    assert scripts["hipcc"].needs_devel
    assert not scripts["hipcc"].needs_gpu
    assert scripts["amdclang"].paths == ("lib/llvm/bin/amdclang", "bin/amdclang")
    assert scripts["amdclang"].resolve({"bin/amdclang"}) == "bin/amdclang"
    assert scripts["amdclang"].resolve(set()) is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + LIBRARY_ROWS.replace('"core"', '"nope"', 1), "is not a [[package]] key"),
        (lambda t: t + LIBRARY_ROWS.replace("rocdxg", "amdhip64"), "short names listed twice"),
        (
            lambda t: t + LIBRARY_ROWS.replace("optional = true", 'optional = "yes"'),
            "true or false",
        ),
        (lambda t: t.replace("needs_gpu = true", "needs_gpu = 1", 1), "true or false"),
        (lambda t: t.replace('path = "bin/hipcc"', "path = []", 1), "non-empty list of paths"),
        (
            lambda t: t.replace("rocprof-compute = {", "rocminfo = {", 1),
            "console scripts declared twice: ['rocminfo']",
        ),
    ],
)
def test_profile_library_and_script_errors(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    root = tmp_path / "start"
    root.mkdir()
    profile = _profile_copy(
        root, lambda text: edit(re.sub(r"(?ms)^\[\[library\]\].*?\n\n", "", text))
    )
    with pytest.raises(ProfileError, match=re.escape(message)):
        load_profile(profile)


def test_dist_info_document_from_the_profile() -> None:
    profile = load_profile(PROFILE)
    family = profile.families.get(FAMILY)
    core = profile.package("core")
    (hipconfig,) = [s for s in core.console_scripts if s.name == "hipconfig"]
    document = dist_info_document(
        profile=profile,
        version=VERSION,
        family=family,
        shipped={"core", "libraries"},
        files={"core": {"lib/libamdhip64.so.7", "bin/hipconfig"}, "libraries": {"lib/x.so"}},
        scripts=[("core", hipconfig, "bin/hipconfig")],
        devel={"root": "root"},
    )
    assert document["schema"] == 2
    assert document["target_families"] == {
        "available": [FAMILY],
        "default": FAMILY,
        "linux": [],
        "windows": [],
        "targets": {FAMILY: ["gfx1200", "gfx1201"]},
    }
    packages = document["packages"]
    assert packages["libraries"]["dist_template"] == "rocm-sdk-libraries-{target_family}"
    assert packages["libraries"]["module"] == LIBS
    assert packages["core"]["required"]
    assert not packages["libraries"]["required"]
    assert [p for p, v in sorted(packages.items()) if not v["shipped"]] == ["devel", "profiler"]
    built = [row["name"] for row in document["libraries"] if row["built"]]
    assert built == ["amdhip64"]
    assert document["console_scripts"] == {
        "hipconfig": {
            "package": "core",
            "path": "bin/hipconfig",
            "test_args": ["--version"],
            "needs_gpu": False,
            "needs_devel": True,
        }
    }
