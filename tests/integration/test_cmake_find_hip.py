"""What PyTorch's packaging does with our wheels: ``CMAKE_PREFIX_PATH=$(rocm-sdk path --cmake)``
and ``find_package(hip)`` in a tiny CMake project, in a fresh venv after ``rocm-sdk init``.

The search is confined to that prefix (no package registries, no system prefixes such as
/opt/rocm), so only the wheels' hip-config.cmake can satisfy it. With a C compiler the project
is also built against ``hip::host`` and run, without ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration._venv import UV, Venv, create_uv_venv, find_links, isolated_env, run

pytestmark = pytest.mark.integration

FAMILY = "gfx120X-all"
CMAKE = shutil.which("cmake")
CC = shutil.which("cc") or shutil.which("gcc")
TIMEOUT = 240

_CMAKELISTS = """\
cmake_minimum_required(VERSION 3.16)
project(find_hip LANGUAGES {languages})
find_package(hip REQUIRED)
get_target_property(_hip_lib hip::amdhip64 IMPORTED_LOCATION)
get_target_property(_hip_include hip::amdhip64 INTERFACE_INCLUDE_DIRECTORIES)
if(NOT EXISTS "${{_hip_lib}}" OR NOT EXISTS "${{_hip_include}}/hip/hip_runtime.h")
  message(FATAL_ERROR "hip::amdhip64 points at missing files: ${{_hip_lib}} ${{_hip_include}}")
endif()
file(WRITE "${{CMAKE_BINARY_DIR}}/found.txt" "${{hip_DIR}}\\n${{hip_VERSION}}\\n${{_hip_lib}}\\n")
{program}
"""
_PROGRAM = """\
add_executable(hip_version main.c)
target_link_libraries(hip_version PRIVATE hip::host)
"""
_MAIN_C = """\
#include <hip/hip_runtime.h>
#include <stdio.h>
int main(void) {
  int version = 0;
  if (hipRuntimeGetVersion(&version) != hipSuccess) return 1;
  printf("HIP_VERSION %d runtime %d\\n", HIP_VERSION, version);
  return 0;
}
"""


@dataclass(frozen=True)
class Initialized:
    venv: Venv
    cmake_dir: Path


@pytest.fixture(scope="module")
def initialized(sample_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Initialized:
    if CMAKE is None:
        pytest.skip("cmake is not installed (apt-get install cmake)")
    tmp = tmp_path_factory.mktemp("cmake-find-hip")
    env = {
        k: v
        for k, v in isolated_env(tmp).items()
        if not k.startswith(("CMAKE_", "HIP_", "ROCM_")) and not k.endswith("_DIR")
    }
    venv = create_uv_venv(tmp / "venv", env)
    install = [UV, "pip", "install", "--python", venv.python, *find_links(sample_build, FAMILY)]
    run([*install, "rocm[libraries,devel]"], env, cwd=tmp)
    venv.script("rocm-sdk", "init")
    cmake_dir = Path(venv.script("rocm-sdk", "path", "--cmake").stdout.strip())
    return Initialized(venv=venv, cmake_dir=cmake_dir)


def _configure(initialized: Initialized, project: Path, build: Path) -> list[str]:
    result = run(
        [
            CMAKE or "cmake",
            "-S",
            project,
            "-B",
            build,
            f"-DCMAKE_PREFIX_PATH={initialized.cmake_dir}",
            "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF",
            "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF",
            "-DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF",
        ],
        initialized.venv.env,
        cwd=project,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return (build / "found.txt").read_text().splitlines()


@pytest.mark.timeout(TIMEOUT)
def test_find_package_hip_finds_the_devel_tree(initialized: Initialized, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(_CMAKELISTS.format(languages="NONE", program=""))
    hip_dir, version, library = _configure(initialized, project, tmp_path / "build")
    assert Path(hip_dir) == initialized.cmake_dir / "hip"
    assert version == "7.1.25000"
    assert Path(library).is_relative_to(initialized.venv.site_packages)
    assert Path(library).name == "libamdhip64.so.7"


@pytest.mark.timeout(TIMEOUT)
def test_a_program_built_against_hip_host_runs(initialized: Initialized, tmp_path: Path) -> None:
    if CC is None:
        pytest.skip("no C compiler (cc or gcc) to build the CMake project with")
    project = tmp_path / "project"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(_CMAKELISTS.format(languages="C", program=_PROGRAM))
    (project / "main.c").write_text(_MAIN_C)
    build = tmp_path / "build"
    _configure(initialized, project, build)
    run([CMAKE or "cmake", "--build", build], initialized.venv.env, cwd=project, timeout=120)
    result = run([build / "hip_version"], initialized.venv.env, cwd=tmp_path, timeout=30)
    assert result.stdout.strip() == "HIP_VERSION 70125000 runtime 70125000"
