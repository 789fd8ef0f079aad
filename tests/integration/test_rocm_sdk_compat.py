"""Our ``rocm_sdk`` against TheRock's: the sample wheels installed per family, then the API
surface (names and signatures written down from TheRock's package), every documented
``initialize_process`` form, ``find_libraries`` with every short name the sample has, the target
family with and without ``ROCM_SDK_TARGET_FAMILY``, every CLI form, and ``pip uninstall`` after
``rocm-sdk init`` leaving nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration._venv import (
    UV,
    Venv,
    create_pip_venv,
    create_uv_venv,
    find_links,
    isolated_env,
    run,
)

pytestmark = pytest.mark.integration

FAMILIES = ("gfx94X-dcgpu", "gfx110X-all", "gfx120X-all")
TARGETS = {
    "gfx94X-dcgpu": "gfx942",
    "gfx110X-all": "gfx1100;gfx1101;gfx1102;gfx1103",
    "gfx120X-all": "gfx1200;gfx1201",
}
# The short names of TheRock's table that the sample's artifacts hold (plus rocblas/rocrand,
# rows we add from TheRock's "wanted later" list), and the package each comes from.
SAMPLE_LIBRARIES = {
    "amdhip64": "core",
    "hiprtc": "core",
    "rocblas": "libraries",
    "rocrand": "libraries",
}
SETUP_TIMEOUT = 240

# TheRock's signatures (ROCm/TheRock build_tools/packaging/python/templates/rocm/src/rocm_sdk):
# (name, kind, default) per parameter, "-" for no default. Ours must start with exactly these;
# anything after them must have a default (or be **kwargs).
REQUIRED = "-"
POK, KO, VARARGS, VARKW = "POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY", "VAR_POSITIONAL", "VAR_KEYWORD"
TARGET_FAMILY_ARG = [["self", POK, REQUIRED], ["target_family", POK, "None"]]
SIGNATURES: dict[str, list[list[str]]] = {
    "rocm_sdk.find_libraries": [["shortnames", VARARGS, REQUIRED]],
    "rocm_sdk.preload_libraries": [["shortnames", VARARGS, REQUIRED], ["rtld_global", KO, "True"]],
    "rocm_sdk.initialize_process": [
        ["preload_shortnames", KO, "None"],
        ["rtld_global", KO, "True"],
        ["env_override", KO, "True"],
        ["check_version", KO, "None"],
        ["fail_on_version_mismatch", KO, "False"],
        ["kwargs", VARKW, REQUIRED],
    ],
    "rocm_sdk.__main__.main": [["argv", POK, "None"]],
    "rocm_sdk._dist_info.determine_target_family": [],
    "rocm_sdk._dist_info.discover_current_target_family": [],
    "rocm_sdk._dist_info.get_target_family_platform_marker": [["target_family", POK, REQUIRED]],
    "rocm_sdk._dist_info.build_per_target_extras": [],
    "rocm_sdk._dist_info.build_install_requires": [["target_family", POK, REQUIRED]],
    "rocm_sdk._dist_info.PackageEntry": [
        ["logical_name", POK, REQUIRED],
        ["dist_package_template", POK, REQUIRED],
        ["pure_py_package_name", KO, REQUIRED],
        ["template_directory", KO, REQUIRED],
        ["required", KO, "False"],
    ],
    "rocm_sdk._dist_info.PackageEntry.get_dist_package_name": TARGET_FAMILY_ARG,
    "rocm_sdk._dist_info.PackageEntry.get_dist_package_require": TARGET_FAMILY_ARG,
    "rocm_sdk._dist_info.PackageEntry.get_py_package_name": TARGET_FAMILY_ARG,
    "rocm_sdk._dist_info.PackageEntry.get_py_package": TARGET_FAMILY_ARG,
    "rocm_sdk._dist_info.PackageEntry.has_py_package": TARGET_FAMILY_ARG,
    "rocm_sdk._dist_info.LibraryEntry": [
        ["shortname", POK, REQUIRED],
        ["package_name", POK, REQUIRED],
        ["so_pattern", POK, REQUIRED],
        ["dll_pattern", POK, REQUIRED],
        ["posix_relpath", POK, "'lib'"],
        ["optional", POK, "False"],
    ],
}
# Module attributes and their types; entry attributes.
ATTRIBUTES = {
    "rocm_sdk.__version__": "str",
    "rocm_sdk._ALL_CDLLS": "dict",
    "rocm_sdk._dist_info.__version__": "str",
    "rocm_sdk._dist_info.ALL_PACKAGES": "dict",
    "rocm_sdk._dist_info.ALL_LIBRARIES": "dict",
    "rocm_sdk._dist_info.AVAILABLE_TARGET_FAMILIES": "list",
    "rocm_sdk._dist_info.DEFAULT_TARGET_FAMILY": "str",
    "rocm_sdk._dist_info.PY_PACKAGE_SUFFIX_NONCE": "str",
    "rocm_sdk._dist_info.LINUX_TARGET_FAMILIES": "list",
    "rocm_sdk._dist_info.WINDOWS_TARGET_FAMILIES": "list",
    "rocm_sdk._dist_info.CACHED_TARGET_FAMILY": "NoneType",
}
PACKAGE_ATTRIBUTES = [
    "logical_name",
    "dist_package_template",
    "pure_py_package_name",
    "template_directory",
    "required",
    "is_target_specific",
]
LIBRARY_ATTRIBUTES = [
    "shortname",
    "package",
    "posix_relpath",
    "windows_relpath",
    "so_pattern",
    "dll_pattern",
    "optional",
]

SURFACE_CODE = """
import importlib, inspect, json, sys
import rocm_sdk, rocm_sdk.__main__, rocm_sdk._dist_info as di

def resolve(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise LookupError(dotted)

def params(obj):
    return [
        [p.name, p.kind.name, "-" if p.default is p.empty else repr(p.default)]
        for p in inspect.signature(obj).parameters.values()
    ]

wanted = json.loads(sys.argv[1])
package, library = di.ALL_PACKAGES["core"], di.ALL_LIBRARIES["amdhip64"]
print(json.dumps({
    "signatures": {name: params(resolve(name)) for name in wanted["signatures"]},
    "types": {name: type(resolve(name)).__name__ for name in wanted["types"]},
    "package": [a for a in wanted["package"] if not hasattr(package, a)],
    "library": [a for a in wanted["library"] if not hasattr(library, a)],
    "library_package": type(library.package).__name__,
    "all": rocm_sdk.__all__,
    "packages": sorted(di.ALL_PACKAGES),
    "libraries": sorted(di.ALL_LIBRARIES),
}))
"""


@dataclass(frozen=True)
class Installed:
    family: str
    venv: Venv
    version: str

    def python(self, code: str, *args: str, env: dict[str, str] | None = None) -> str:
        environment = {**self.venv.env, **(env or {})}
        result = run([self.venv.python, "-c", code, *args], environment, cwd=self.venv.root)
        return result.stdout

    def cli(self, *args: str, check: bool = True) -> str:
        return self.venv.script("rocm-sdk", *args, check=check).stdout

    @property
    def devel_module(self) -> str:
        return "_rocm_sdk_devel_" + self.family.replace("-", "_")


def _uv_install(venv: Venv, build: Path, family: str, cwd: Path) -> None:
    args: list[str | Path] = [UV, "pip", "install", "--python", venv.python]
    run([*args, *find_links(build, family), "rocm[libraries,devel]"], venv.env, cwd=cwd)


@pytest.fixture(scope="module", params=FAMILIES)
def installed(
    request: pytest.FixtureRequest, sample_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    family: str = request.param
    tmp = tmp_path_factory.mktemp(f"compat-{family}")
    venv = create_uv_venv(tmp / "venv", isolated_env(tmp))
    _uv_install(venv, sample_build, family, tmp)
    version = json.loads((sample_build / "build-manifest.json").read_text())["version"]
    return Installed(family=family, venv=venv, version=version)


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_api_surface_matches_therock(installed: Installed) -> None:
    wanted = {
        "signatures": sorted(SIGNATURES),
        "types": sorted(ATTRIBUTES),
        "package": PACKAGE_ATTRIBUTES,
        "library": LIBRARY_ATTRIBUTES,
    }
    found = json.loads(installed.python(SURFACE_CODE, json.dumps(wanted)))
    for name, theirs in SIGNATURES.items():
        ours = found["signatures"][name]
        assert ours[: len(theirs)] == theirs, name
        extra = ours[len(theirs) :]
        assert all(p[2] != REQUIRED or p[1] == VARKW for p in extra), (name, extra)
    assert found["types"] == ATTRIBUTES
    assert found["package"] == []
    assert found["library"] == []
    assert found["library_package"] == "PackageEntry"
    assert {"__version__", "find_libraries", "initialize_process"} <= set(found["all"])
    assert {"meta", "core", "libraries", "devel"} <= set(found["packages"])
    assert set(SAMPLE_LIBRARIES) | {"miopen", "hipdnn", "hipblaslt", "rocdxg"} <= set(
        found["libraries"]
    )


INIT_FORMS = """
import os, re, warnings, rocm_sdk
version = rocm_sdk.__version__
loaded = {}
def step(name, call):
    rocm_sdk._ALL_CDLLS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
            outcome = "ok"
        except Exception as exc:
            outcome = type(exc).__name__ + ": " + str(exc)
    loaded[name] = [outcome, sorted(rocm_sdk._ALL_CDLLS), [w.category.__name__ for w in caught]]

step("default", lambda: rocm_sdk.initialize_process())
step("preload", lambda: rocm_sdk.initialize_process(preload_shortnames=["amdhip64", "rocblas"]))
step("local", lambda: rocm_sdk.initialize_process(preload_shortnames=["hiprtc"], rtld_global=False))
step("kwargs", lambda: rocm_sdk.initialize_process(preload_shortnames=[], some_future_option=1))
os.environ["ROCM_SDK_PRELOAD_LIBRARIES"] = " amdhip64, ,hiprtc,"
step("env-comma", lambda: rocm_sdk.initialize_process())
os.environ["ROCM_SDK_PRELOAD_LIBRARIES"] = "rocrand;amdhip64;"
step("env-semicolon", lambda: rocm_sdk.initialize_process())
step("env-off", lambda: rocm_sdk.initialize_process(env_override=False))
os.environ["ROCM_SDK_PRELOAD_LIBRARIES"] = "amdhip64,miopen"
step("env-bad", lambda: rocm_sdk.initialize_process())
del os.environ["ROCM_SDK_PRELOAD_LIBRARIES"]
step("exact", lambda: rocm_sdk.initialize_process(check_version=version))
step("wildcard", lambda: rocm_sdk.initialize_process(check_version=version.split(".")[0] + ".*"))
step("pattern", lambda: rocm_sdk.initialize_process(check_version=re.compile(r"\\d+\\.")))
step("mismatch", lambda: rocm_sdk.initialize_process(check_version="0.1"))
step("mismatch-fail", lambda: rocm_sdk.initialize_process(
    check_version="0.1.*", fail_on_version_mismatch=True))
step("pytorch", lambda: rocm_sdk.initialize_process(
    preload_shortnames=["amdhip64", "hiprtc", "rocblas"], check_version=version))
import json
print(json.dumps(loaded))
"""


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_initialize_process_in_every_documented_form(installed: Installed) -> None:
    steps = json.loads(installed.python(INIT_FORMS))
    ok = "ok"
    assert steps["default"] == [ok, [], []]
    assert steps["preload"] == [ok, ["amdhip64", "rocblas"], []]
    assert steps["local"] == [ok, ["hiprtc"], []]
    assert steps["kwargs"] == [ok, [], []]
    assert steps["env-comma"] == [ok, ["amdhip64", "hiprtc"], []]
    assert steps["env-semicolon"] == [ok, ["amdhip64", "rocrand"], []]
    assert steps["env-off"] == [ok, [], []]
    outcome, _, _ = steps["env-bad"]  # the sample has no MIOpen: TheRock's RuntimeError
    assert outcome.startswith("RuntimeError: Could not preload"), outcome
    assert "ROCM_SDK_PRELOAD_LIBRARIES='amdhip64,miopen'" in outcome
    for name in ("exact", "wildcard", "pattern"):
        assert steps[name] == [ok, [], []], name
    assert steps["mismatch"] == [ok, [], ["UserWarning"]]
    outcome, _, _ = steps["mismatch-fail"]
    assert outcome.startswith(
        "RuntimeError: The program was compiled against a ROCm version matching '0.1.*'"
    )
    assert steps["pytorch"] == [ok, ["amdhip64", "hiprtc", "rocblas"], []]


FIND_CODE = """
import json, sys, rocm_sdk
from rocm_sdk import _dist_info as di
found = {}
for name in di.ALL_LIBRARIES:
    try:
        found[name] = [str(p) for p in rocm_sdk.find_libraries(name)]
    except Exception as exc:
        found[name] = type(exc).__name__
try:
    rocm_sdk.find_libraries("no-such-library")
except ModuleNotFoundError as exc:
    found["?"] = str(exc).split(" (")[0]
print(json.dumps(found))
"""


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_find_libraries_with_every_short_name(installed: Installed) -> None:
    found = json.loads(installed.python(FIND_CODE))
    site = installed.venv.site_packages
    modules = {
        "core": "_rocm_sdk_core",
        "libraries": "_rocm_sdk_libraries_" + installed.family.replace("-", "_"),
    }
    for name, package in SAMPLE_LIBRARIES.items():
        (path,) = found.pop(name)
        assert Path(path).is_file(), name
        assert Path(path).parent == site / modules[package] / "lib", name
        assert Path(path).name.startswith(f"lib{name}.so"), name
    assert found.pop("?") == "Unknown rocm library 'no-such-library'"
    assert found.pop("rocdxg") == []  # optional and absent: skipped, as in TheRock
    # Everything else of the table is absent from the sample: TheRock's FileNotFoundError.
    assert set(found.values()) == {"FileNotFoundError"}, found


FAMILY_CODE = """
from rocm_sdk import _dist_info as di
try:
    print(di.determine_target_family())
except ValueError as exc:
    print("ValueError:", exc)
"""


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_determine_target_family_with_and_without_the_variable(installed: Installed) -> None:
    family = installed.family
    assert installed.python(FAMILY_CODE).strip() == family
    with_variable = installed.python(FAMILY_CODE, env={"ROCM_SDK_TARGET_FAMILY": family})
    assert with_variable.strip() == family
    other = next(f for f in FAMILIES if f != family)
    refused = installed.python(FAMILY_CODE, env={"ROCM_SDK_TARGET_FAMILY": other}).strip()
    assert refused.startswith(f"ValueError: target family '{other}'"), refused
    assert family in refused


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_every_cli_form(installed: Installed) -> None:
    version = installed.version
    assert installed.cli("--version").strip() == version
    assert installed.cli("version").strip() == version
    assert installed.cli("targets").strip() == TARGETS[installed.family]
    assert "usage: rocm-sdk" in installed.cli("--help")
    for command in ("version", "targets", "path", "init", "test"):
        assert f"usage: rocm-sdk {command}" in installed.cli(command, "--help")
    quiet = installed.venv.script("rocm-sdk", "init", "--quiet")
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert "already initialized" in installed.cli("init")
    root = Path(installed.cli("path", "--root").strip())
    assert root == installed.venv.site_packages / installed.devel_module / "root"
    assert Path(installed.cli("path", "--bin").strip()) == root / "bin"
    cmake = Path(installed.cli("path", "--cmake").strip())
    assert cmake == root / "lib" / "cmake"
    assert (cmake / "hip" / "hip-config.cmake").is_file()
    assert installed.python("from rocm_sdk.__main__ import main") == ""
    module = installed.venv.run(installed.venv.python, "-m", "rocm_sdk", "version")
    assert module.stdout.strip() == version
    (entry_points,) = installed.venv.site_packages.glob("rocm-*.dist-info/entry_points.txt")
    assert "rocm-sdk = rocm_sdk.__main__:main" in entry_points.read_text()


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_rocm_sdk_test_knows_gpus_and_loader_failures(sample_build: Path, tmp_path: Path) -> None:
    venv = create_uv_venv(tmp_path / "venv", isolated_env(tmp_path))
    _uv_install(venv, sample_build, "gfx120X-all", tmp_path)
    # As on a machine without a GPU, whatever this one has.
    env = {**venv.env, "ROCM_SDK_TEST_KFD_DEVICE": str(tmp_path / "no-kfd")}
    result = run([venv.bin / "rocm-sdk", "test"], env, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    # rocminfo needs a GPU: skipped with the reason; hipconfig needs none and must work.
    assert "needs a GPU and " in lines["SKIP console script rocminfo"]
    assert "PASS console script hipconfig" in lines

    # Break the library rocminfo and hipconfig start with: a loader failure always fails.
    library = venv.site_packages / "_rocm_sdk_core" / "lib" / "libhsa-runtime64.so.1"
    library.rename(tmp_path / library.name)
    result = run([venv.bin / "rocm-sdk", "test"], env, cwd=tmp_path, check=False)
    assert result.returncode == 1
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    for name in ("rocminfo", "hipconfig"):
        line = lines[f"FAIL console script {name}"]
        assert "error while loading shared libraries: libhsa-runtime64.so.1" in line, line


@pytest.fixture
def pip_venv(sample_build: Path, tmp_path: Path) -> Venv:
    venv = create_pip_venv(tmp_path / "venv", isolated_env(tmp_path))
    _uv_install(venv, sample_build, "gfx120X-all", tmp_path)
    return venv


@pytest.mark.timeout(SETUP_TIMEOUT)
def test_pip_uninstall_after_init_leaves_nothing(pip_venv: Venv) -> None:
    site = pip_venv.site_packages
    ours = sorted(p.name for p in site.iterdir() if p.name.startswith(("rocm", "_rocm")))
    assert len(ours) == 8, ours  # 4 packages, 4 dist-info directories
    pip_venv.script("rocm-sdk", "init")
    assert (site / "_rocm_sdk_devel_gfx120X_all" / "root" / "include").is_dir()
    dists = [
        "rocm",
        "rocm-sdk-core",
        "rocm-sdk-libraries-gfx120X-all",
        "rocm-sdk-devel-gfx120X-all",
    ]
    pip_venv.pip("uninstall", "--yes", *dists)
    left = sorted(p.name for p in site.iterdir() if "rocm" in p.name)
    assert left == []
