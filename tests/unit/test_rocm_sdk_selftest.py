"""``rocm-sdk test``: the unittest self tests, their PASS/FAIL/SKIP report and JUnit XML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _rocm_sdk_env import (
    CORE,
    DEVEL,
    LIBS,
    VERSION,
    Env,
    Native,
    add_console_script,
    check_ok,
    executable,
    make_env,
)

from wheelyard.build.devel import DEVEL_ROOT

# -- rocm-sdk test --------------------------------------------------------------------------------


RUNTIME_CHECKS = (
    "import sys\nfrom rocm_sdk import _selftest\n"
    "sys.exit(_selftest.run(junitxml=sys.argv[1] if sys.argv[1:] else None,"
    " names=['rocm_sdk.tests.runtime_test']))\n"
)


def _runtime_checks(
    env: Env, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """What ``rocm-sdk test`` runs, limited to the runtime module (quicker)."""
    return subprocess.run(
        [str(env.python), "-c", RUNTIME_CHECKS, *args],
        capture_output=True,
        text=True,
        env=env.env(extra),
        timeout=120,
        check=False,
    )


def _lines(out: str) -> dict[str, str]:
    """Check name -> status, from the PASS/FAIL/SKIP lines."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"(PASS|FAIL|SKIP) ([^:]+)", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def test_selftest_passes_and_writes_junit(env: Env) -> None:
    report = env.root / "reports" / "rocm.xml"
    out = check_ok(env.cli("test", "--junitxml", str(report)))
    results = _lines(out)
    for name in (
        "rocm-sdk --help",
        "rocm-sdk --version",
        "rocm-sdk version",
        "rocm-sdk targets",
        "rocm-sdk console script",
        "import rocm_sdk.__main__",
        "_dist_info names",
        "determine_target_family",
        "initialize_process(preload_shortnames=...)",
        "ROCM_SDK_PRELOAD_LIBRARIES separated by ';'",
        "initialize_process(check_version=...)",
        "find_libraries core",
        "find_libraries x",
        f"{CORE} beside rocm_sdk",
        f"load {CORE}/lib/libcore.so.1",
        f"load {LIBS}/lib/libx.so.1",
        "console script hello",
        "versions",
        "library table",
        "devel init",
        "rocm-sdk path --cmake",
        "devel cmake config",
        "devel hard links",
        "devel files in RECORD",
        f"load {DEVEL}/{DEVEL_ROOT}/lib/libdev.so.1",
        f"load {DEVEL}/{DEVEL_ROOT}/lib/libx.so.1",
    ):
        assert results.get(name) == "PASS", (name, out)
    assert "find_libraries absent" not in results  # not in this build: not checked
    gpu = "PASS" if os.path.exists("/dev/kfd") else "SKIP"
    assert results["gpu family"] == gpu
    summary = re.search(r"^(\d+) passed, 0 failed, (\d+) skipped$", out, re.MULTILINE)
    assert summary is not None, out
    assert int(summary.group(1)) + int(summary.group(2)) == len(results)

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert {case.get("name") for case in cases} == set(results)
    assert suite.get("failures") == "0"
    assert suite.get("tests") == str(len(results))


def test_selftest_modules_run_under_plain_unittest(env: Env) -> None:
    result = subprocess.run(
        [
            str(env.python),
            "-m",
            "unittest",
            "rocm_sdk.tests.base_test",
            "rocm_sdk.tests.devel_test",
        ],
        capture_output=True,
        text=True,
        env=env.env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^OK", result.stderr, re.MULTILINE), result.stderr


def test_selftest_fails_when_a_library_cannot_load(env: Env, native: Native) -> None:
    shutil.copy2(native.broken, env.site / LIBS / "lib" / "libbroken.so.1")
    report = env.root / "rocm.xml"
    result = _runtime_checks(env, str(report))
    assert result.returncode == 1
    line = next(text for text in result.stdout.splitlines() if "libbroken" in text)
    assert line.startswith(f"FAIL load {LIBS}/lib/libbroken.so.1: ")
    assert "libgone.so.1" in line
    assert re.search(r"^\d+ passed, 1 failed, \d+ skipped$", result.stdout, re.MULTILINE)
    failures = ET.parse(report).getroot().findall(".//failure")
    assert len(failures) == 1
    assert "libgone.so.1" in (failures[0].get("message") or "")


@pytest.mark.parametrize("gpu", [False, True], ids=["no-gpu", "gpu"])
def test_console_scripts_and_gpus(tmp_path: Path, native: Native, gpu: bool) -> None:
    env = make_env(tmp_path, native)
    fails = executable(env.root / "fails", "#!/bin/sh\necho 'no GPU driver' >&2\nexit 1\n")
    add_console_script(env, "gpu-tool", fails, needs_gpu=True)
    add_console_script(env, "devel-tool", fails, needs_devel=True)
    add_console_script(env, "plain-tool", fails)
    add_console_script(env, "cannot-start", native.cannot_start, needs_gpu=True)
    kfd = env.root / ("kfd" if gpu else "no-kfd")
    if gpu:
        kfd.write_text("")
    result = _runtime_checks(env, extra={"ROCM_SDK_TEST_KFD_DEVICE": str(kfd)})
    assert result.returncode == 1
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    # A loader failure always fails, GPU or not.
    assert lines["FAIL console script cannot-start"].endswith(
        "libgone.so.1: cannot open shared object file: No such file or directory"
    )
    assert "error while loading shared libraries" in lines["FAIL console script cannot-start"]
    # Needing a GPU: skipped without one (with the reason), must exit 0 with one.
    if gpu:
        assert "FAIL console script gpu-tool" in lines
    else:
        assert f"needs a GPU and {kfd} is absent" in lines["SKIP console script gpu-tool"]
        assert "no GPU driver" in lines["SKIP console script gpu-tool"]
    # The devel wheel is installed here, so devel-tool must work; plain-tool always must.
    assert "FAIL console script devel-tool" in lines
    assert "FAIL console script plain-tool" in lines
    assert "PASS console script hello" in lines


def test_console_script_needing_devel_is_skipped_without_it(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, devel=False)
    fails = executable(env.root / "fails", "#!/bin/sh\nexit 3\n")
    add_console_script(env, "devel-tool", fails, needs_devel=True)
    result = _runtime_checks(env)
    assert result.returncode == 0, result.stdout
    line = next(x for x in result.stdout.splitlines() if "console script devel-tool" in x)
    assert line.startswith("SKIP console script devel-tool: needs the devel files")


def test_selftest_fails_on_mixed_versions(env: Env) -> None:
    info = next(env.site.glob("rocm_sdk_core-*.dist-info"))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rocm-sdk-core\nVersion: 7.9.0\n")
    result = _runtime_checks(env)
    assert result.returncode == 1
    assert "FAIL versions: " in result.stdout
    assert "rocm-sdk-core 7.9.0" in result.stdout
    assert f'pip install "rocm[devel,libraries]=={VERSION}"' in result.stdout


def test_selftest_fails_when_a_listed_library_is_missing(env: Env) -> None:
    (env.site / LIBS / "lib" / "libx.so.1").unlink()
    result = _runtime_checks(env)
    assert result.returncode == 1
    assert "FAIL library table: listed in rocm_sdk but missing from the installed wheels: x " in (
        result.stdout
    )


def test_selftest_without_optional_wheels_skips_them(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, libraries=False, devel=False)
    result = env.cli("test")
    assert result.returncode == 0, result.stdout
    results = _lines(result.stdout)
    assert results[f"load {LIBS}"] == "SKIP"
    assert results["devel"] == "SKIP"
    assert "rocm[devel]" in result.stdout


def test_gpu_targets_from_kfd_topology(env: Env) -> None:
    nodes = env.root / "topology"
    for node, version in (("0", 0), ("1", 110000), ("2", 90010), ("3", 120001)):
        (nodes / node).mkdir(parents=True)
        (nodes / node / "properties").write_text(
            f"cpu_cores_count 4\ngfx_target_version {version}\n"
        )
    out = check_ok(
        env.code(
            "from rocm_sdk.tests.utils import gfx_name, gpu_targets\n"
            f"print(gpu_targets({str(nodes)!r}), gfx_name(90402), gfx_name(110501))"
        )
    )
    assert out.strip() == "['gfx1100', 'gfx1201', 'gfx90a'] gfx942 gfx1151"
