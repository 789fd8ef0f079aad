"""The built wheels installed for real and used as a user would use them.

For every family of the bundled sample, one fresh venv (per module) gets
``pip install --no-index --find-links dist --find-links dist/<family> 'rocm[libraries,devel]'``
from the session's sample build; the tests then run ``rocm-sdk``, the console scripts and
``ctypes.CDLL`` of every installed shared library in fresh processes without ``LD_LIBRARY_PATH``,
expand the devel tree and finally uninstall the devel wheel. uv is checked as an installer too.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration._venv import (
    UV,
    Venv,
    create_pip_venv,
    create_uv_venv,
    find_links,
    is_shared_library_name,
    isolated_env,
    run,
    shared_libraries,
)

pytestmark = pytest.mark.integration

# The oracle for targets is written out here rather than read through wheelyard.
TARGETS = {
    "gfx94X-dcgpu": ("gfx942",),
    "gfx110X-all": ("gfx1100", "gfx1101", "gfx1102", "gfx1103"),
    "gfx120X-all": ("gfx1200", "gfx1201"),
}
ALL_TARGETS = {target for targets in TARGETS.values() for target in targets}
SCRIPTS = ("amdclang", "hipconfig", "rocminfo")
CORE = "_rocm_sdk_core"
# A build-time first test pays for the sample build and the venv; later ones are quick.
SETUP_TIMEOUT = 240


def _ident(family: str) -> str:
    return family.replace("-", "_")


@dataclass(frozen=True)
class Installed:
    family: str
    venv: Venv
    build: Path
    version: str
    archive_before_init: bool
    root_before_init: bool

    @property
    def libraries_module(self) -> str:
        return f"_rocm_sdk_libraries_{_ident(self.family)}"

    @property
    def devel_module(self) -> str:
        return f"_rocm_sdk_devel_{_ident(self.family)}"

    @property
    def devel_dir(self) -> Path:
        return self.venv.site_packages / self.devel_module

    @property
    def runtime_dirs(self) -> tuple[Path, Path]:
        site = self.venv.site_packages
        return site / CORE, site / self.libraries_module

    def rocm_sdk(self, *args: str, check: bool = True) -> str:
        return self.venv.script("rocm-sdk", *args, check=check).stdout

    def wheel_shared_libraries(self) -> set[Path]:
        """Where the ELF shared libraries of this family's runtime wheels are installed, read
        from the wheels themselves (not from the venv)."""
        dist = self.build / "dist"
        wheels = [*dist.glob("rocm_sdk_core-*.whl"), *(dist / self.family).glob("*.whl")]
        found = set()
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    top = name.split("/", 1)[0]
                    if top not in {CORE, self.libraries_module}:
                        continue
                    if is_shared_library_name(name.rsplit("/", 1)[-1]):
                        with archive.open(name) as member:
                            if member.read(4) == b"\x7fELF":
                                found.add(self.venv.site_packages / name)
        return found


@pytest.fixture(scope="module", params=tuple(TARGETS))
def installed(
    request: pytest.FixtureRequest, sample_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    family: str = request.param
    tmp = tmp_path_factory.mktemp(f"installed-{family}")
    venv = create_pip_venv(tmp / "venv", isolated_env(tmp))
    venv.pip(
        "install", "--no-cache-dir", *find_links(sample_build, family), "rocm[libraries,devel]"
    )
    manifest = json.loads((sample_build / "build-manifest.json").read_text())
    devel = venv.site_packages / f"_rocm_sdk_devel_{_ident(family)}"
    return Installed(
        family=family,
        venv=venv,
        build=sample_build,
        version=manifest["version"],
        archive_before_init=(devel / "devel.tar").is_file(),
        root_before_init=(devel / "root").exists(),
    )


def _loads(installed: Installed, libraries: set[Path]) -> list[str]:
    """Load each library in its own fresh process (so that one library cannot satisfy another's
    NEEDED); the problems found, including ROCm libraries mapped from outside the venv (a
    machine with ROCm installed must not make a broken RUNPATH look right)."""
    venv = installed.venv
    ours = {path.name for path in installed.wheel_shared_libraries()}
    problems = []
    for library in sorted(libraries):
        result = venv.load(library)
        if result.returncode != 0:
            problems.append(f"{library}: {result.stderr.strip().splitlines()[-1:]}")
            continue
        for mapped in result.stdout.split():
            if Path(mapped).name in ours and venv.site_packages not in Path(mapped).parents:
                problems.append(f"{library}: mapped {mapped} from outside the venv")
    return problems


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_install_holds_exactly_the_family_distributions(installed: Installed) -> None:
    family = installed.family.lower()
    expected = {
        name: installed.version
        for name in ("rocm", "rocm-sdk-core", f"rocm-sdk-libraries-{family}")
        + (f"rocm-sdk-devel-{family}",)
    }
    assert installed.venv.dists() == expected
    assert installed.archive_before_init, "the devel wheel did not install devel.tar"
    assert not installed.root_before_init, "the devel tree existed before rocm-sdk init"


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_version_prints_the_manifest_version(installed: Installed) -> None:
    assert installed.rocm_sdk("version").strip() == installed.version


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_targets_lists_the_family_targets_in_order(installed: Installed) -> None:
    assert installed.rocm_sdk("targets").strip().split(";") == list(TARGETS[installed.family])


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_init_expands_devel_into_hard_links_of_the_runtime_files(installed: Installed) -> None:
    devel = installed.devel_dir
    archive_was_there = (devel / "devel.tar").exists()
    out = installed.rocm_sdk("init")
    if archive_was_there:
        assert "expanded" in out, out
    root = devel / "root"
    assert root.is_dir()
    assert not (devel / "devel.tar").exists(), "devel.tar is still there after init"
    assert not [p.name for p in devel.iterdir() if p.name.startswith(".root.")], "leftovers"

    manifest = json.loads((devel / "devel-manifest.json").read_text())
    entries = {entry["path"]: entry for entry in manifest["entries"]}
    on_disk = {
        Path(directory, name).relative_to(root).as_posix()
        for directory, dirs, files in os.walk(root)
        for name in dirs + files
    }
    assert on_disk == set(entries), "the devel tree differs from its manifest"

    runtime_dirs = installed.runtime_dirs
    links = 0
    for rel, entry in sorted(entries.items()):
        path = root / rel
        if entry["type"] == "runtime-link":
            links += 1
            runtime = Path(os.path.normpath(path.parent / entry["target"]))
            assert any(d in runtime.parents for d in runtime_dirs), (rel, runtime)
            assert not path.is_symlink(), f"{rel} is still a symlink"
            devel_stat, runtime_stat = path.stat(), runtime.stat()
            assert (devel_stat.st_ino, devel_stat.st_dev) == (
                runtime_stat.st_ino,
                runtime_stat.st_dev,
            ), f"{rel} is not a hard link of {runtime}"
        elif entry["type"] == "symlink":
            assert os.readlink(path) == entry["target"], rel
        elif entry["type"] == "file":
            assert path.is_file(), rel
            assert not path.is_symlink(), rel
            assert path.stat().st_size == entry["size"], rel
        else:
            assert path.is_dir(), rel
            assert not path.is_symlink(), rel
    assert links > 0, "no devel entry links to a runtime file"

    # A second run changes nothing.
    before = root.stat().st_ino
    assert "already initialized" in installed.rocm_sdk("init")
    assert root.stat().st_ino == before


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_path_cmake_holds_the_hip_config(installed: Installed) -> None:
    cmake = Path(installed.rocm_sdk("path", "--cmake").strip())
    assert cmake == installed.devel_dir / "root" / "lib" / "cmake"
    config = cmake / "hip" / "hip-config.cmake"
    assert config.is_file()
    core_config = installed.venv.site_packages / CORE / "lib" / "cmake" / "hip" / "hip-config.cmake"
    assert config.read_bytes() == core_config.read_bytes()


_LICENSE_FILES = """
import importlib.metadata as m, json, sys
print(json.dumps({n: m.distribution(n).metadata.get_all("License-File") for n in sys.argv[1:]}))
"""


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_pip_show_lists_the_license_files(installed: Installed) -> None:
    """Every distribution declares License-File lines (PEP 639) and ``pip show -f`` lists each
    as an installed file below its dist-info/licenses/, present on disk."""
    family = installed.family
    dists = ["rocm", "rocm-sdk-core", f"rocm-sdk-libraries-{family}", f"rocm-sdk-devel-{family}"]
    venv = installed.venv
    declared = json.loads(venv.run(venv.python, "-I", "-c", _LICENSE_FILES, *dists).stdout)
    shown = venv.pip("show", "-f", *dists).stdout.split("\n---\n")
    assert len(shown) == len(dists)
    for name, section in zip(dists, shown, strict=True):
        assert f"Name: {name}" in section.splitlines()
        files = {line.strip() for line in section.split("Files:", 1)[1].splitlines()}
        listed = sorted(f.split("/licenses/", 1)[1] for f in files if ".dist-info/licenses/" in f)
        assert listed == sorted(declared[name]), name
        assert "LICENSE" in listed, name
        for path in files:
            if ".dist-info/licenses/" in path:
                assert (venv.site_packages / path).is_file(), path
    assert "share/doc/hip/LICENSE.txt" in declared["rocm-sdk-core"]
    assert "share/doc/rocblas/LICENSE.md" in declared[f"rocm-sdk-libraries-{family}"]
    assert declared["rocm"] == ["LICENSE"]


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_libraries_wheel_holds_only_this_family_kernels(installed: Installed) -> None:
    site = installed.venv.site_packages
    dist_infos = sorted(site.glob("rocm_sdk_libraries_*.dist-info"))
    assert [d.name.split("-")[0] for d in dist_infos] == [
        f"rocm_sdk_libraries_{_ident(installed.family).lower()}"
    ]
    record = (dist_infos[0] / "RECORD").read_text().splitlines()
    kernels = sorted(
        line.split(",", 1)[0] for line in record if "/TensileLibrary_" in line.split(",", 1)[0]
    )
    prefix = f"{installed.libraries_module}/lib/rocblas/library/TensileLibrary_"
    expected = sorted(f"{prefix}{target}.dat" for target in TARGETS[installed.family])
    assert kernels == expected
    assert all((site / kernel).is_file() for kernel in kernels)

    # No other family's kernel files anywhere in the installed SDK (devel tree included).
    foreign = ALL_TARGETS - set(TARGETS[installed.family])
    stray = [
        str(path)
        for path in site.glob("_rocm_sdk_*/**/TensileLibrary_*.dat")
        if path.stem.removeprefix("TensileLibrary_") in foreign
    ]
    assert stray == []


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_every_shared_library_loads_without_ld_library_path(installed: Installed) -> None:
    installed.rocm_sdk("init")  # so the devel tree's libraries are loaded too
    site = installed.venv.site_packages
    found = set()
    for top in sorted(site.glob("_rocm_sdk_*")):
        found.update(shared_libraries(top))
    expected = installed.wheel_shared_libraries()
    assert expected, "the runtime wheels hold no shared libraries"
    assert expected <= found
    # The devel tree holds the same libraries at the same relative paths.
    root = installed.devel_dir / "root"
    in_devel = {root.joinpath(*p.relative_to(site).parts[1:]) for p in expected}
    assert in_devel <= found
    assert _loads(installed, found) == []


@pytest.mark.timeout(SETUP_TIMEOUT)
@pytest.mark.parametrize("name", SCRIPTS)
def test_console_script_runs_without_ld_library_path(installed: Installed, name: str) -> None:
    result = installed.venv.script(name, "--version")
    assert result.stdout.strip(), f"{name} --version printed nothing"
    if name == "amdclang":
        # The sample clang prints the basename of its argv[0]: the console script passes its
        # own name, so the symlinked executable keeps behaving as "amdclang".
        assert result.stdout.split()[0] == "amdclang", result.stdout


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_rocm_sdk_test_passes(installed: Installed, tmp_path: Path) -> None:
    junit = tmp_path / "rocm-sdk-test.xml"
    out = installed.rocm_sdk("test", "--junitxml", str(junit))
    lines = out.splitlines()
    assert lines[-1].split(", ")[1] == "0 failed", out
    assert not [line for line in lines if line.startswith("FAIL")], out
    loaded = {line.split()[2] for line in lines if line.startswith("PASS load ")}
    site = installed.venv.site_packages
    expected = {p.relative_to(site).as_posix() for p in installed.wheel_shared_libraries()}
    assert expected <= loaded, out
    assert "PASS devel hard links" in lines, out

    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) == sum(
        1 for line in lines if line.startswith(("PASS ", "SKIP "))
    )


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_find_libraries_and_initialize_process(installed: Installed) -> None:
    code = (
        "import json, rocm_sdk\n"
        "rocm_sdk.initialize_process(preload_shortnames=['amdhip64'])\n"
        "paths = [str(p) for p in rocm_sdk.find_libraries('amdhip64', 'rocblas')]\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(json.dumps({'paths': paths, 'preloaded': 'libamdhip64.so.7' in maps}))\n"
    )
    report = json.loads(installed.venv.run(installed.venv.python, "-I", "-c", code).stdout)
    core, libraries = installed.runtime_dirs
    assert report == {
        "paths": [
            str(core / "lib" / "libamdhip64.so.7"),
            str(libraries / "lib" / "librocblas.so.5"),
        ],
        "preloaded": True,
    }


@pytest.fixture
def devel_uninstalled(installed: Installed) -> Iterator[Installed]:
    """The devel wheel uninstalled for the test, installed again afterwards."""
    dist = f"rocm-sdk-devel-{installed.family}"
    installed.venv.pip("uninstall", "-y", dist)
    try:
        yield installed
    finally:
        installed.venv.pip(
            "install",
            "--no-cache-dir",
            "--no-deps",
            *find_links(installed.build, installed.family),
            f"{dist}=={installed.version}",
        )


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_uninstalling_devel_leaves_core_and_libraries_working(
    devel_uninstalled: Installed,
) -> None:
    installed = devel_uninstalled
    assert f"rocm-sdk-devel-{installed.family.lower()}" not in installed.venv.dists()

    # pip removed no file of another wheel.
    site = installed.venv.site_packages
    for dist_info in sorted(site.glob("rocm_sdk_*.dist-info")):
        for line in (dist_info / "RECORD").read_text().splitlines():
            path = line.split(",", 1)[0]
            assert (site / path).exists(), f"{path} of {dist_info.name} is gone"

    out = installed.rocm_sdk("test")
    lines = out.splitlines()
    assert lines[-1].split(", ")[1] == "0 failed", out
    assert [line for line in lines if line.startswith("SKIP devel:")], out
    assert not [line for line in lines if "_rocm_sdk_devel_" in line.split(":")[0]], out

    runtime = set()
    for top in installed.runtime_dirs:
        runtime.update(shared_libraries(top))
    assert installed.wheel_shared_libraries() <= runtime
    assert _loads(installed, runtime) == []


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_uv_installs_a_working_sdk(sample_build: Path, tmp_path: Path) -> None:
    family = "gfx120X-all"
    venv = create_uv_venv(tmp_path / "venv", isolated_env(tmp_path))
    args: list[str | Path] = [UV, "pip", "install", "--python", venv.python]
    run([*args, *find_links(sample_build, family), "rocm[libraries,devel]"], venv.env, cwd=tmp_path)
    version = json.loads((sample_build / "build-manifest.json").read_text())["version"]
    assert venv.script("rocm-sdk", "version").stdout.strip() == version
    out = venv.script("rocm-sdk", "test").stdout
    assert out.splitlines()[-1].split(", ")[1] == "0 failed", out
    assert "PASS devel hard links" in out.splitlines(), out
