"""The rocm_sdk runtime (packaging/rocm/templates/rocm_sdk) in a hand-built environment.

Each test makes a throwaway venv whose site-packages holds the template as ``rocm_sdk/`` with a
``_dist_info.json``, platform modules with real tiny shared libraries, dist-info metadata, console
scripts in the venv's bin, and a devel module whose archive comes from
``wheelyard.devel.write_devel_archive``. The runtime then runs as users run it:
``<venv>/bin/python -m rocm_sdk ...`` in a subprocess.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import venv
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from _elfbuild import compile_elf

from wheelyard.build.devel import DevelEntry, runtime_link_target, write_devel_archive

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packaging" / "rocm" / "templates" / "rocm_sdk"
VERSION = "7.10.0.dev0"
FAMILY = "gfx120X-all"
CORE = "_rocm_sdk_core"
LIBS = "_rocm_sdk_libraries_gfx120X_all"
DEVEL = "_rocm_sdk_devel_gfx120X_all"
DISTS = {
    "rocm": "rocm",
    "core": "rocm-sdk-core",
    "libraries": "rocm-sdk-libraries-gfx120X-all",
    "devel": "rocm-sdk-devel-gfx120X-all",
}
SDE = 315532800
RUNPATH = "$ORIGIN:$ORIGIN/../../_rocm_sdk_core/lib"
BIG = 64 * 1024 * 1024  # large enough that expanding it takes a while


def _host_gpu_targets() -> list[str]:
    """This machine's GPUs, added to the fake family so that `rocm-sdk test` passes here too."""
    if not os.path.exists("/dev/kfd"):
        return []
    found = set()
    for properties in Path("/sys/class/kfd/kfd/topology/nodes").glob("*/properties"):
        match = re.search(r"^gfx_target_version (\d+)$", properties.read_text(), re.MULTILINE)
        if match and int(match.group(1)):
            v = int(match.group(1))
            found.add(f"gfx{v // 10000}{v // 100 % 100:x}{v % 100:x}")
    return sorted(found - {"gfx1200", "gfx1201"})


TARGETS = ["gfx1200", "gfx1201", *_host_gpu_targets()]


@dataclass(frozen=True)
class Native:
    core: Path
    x: Path
    dev: Path
    broken: Path


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Native:
    out = tmp_path_factory.mktemp("native")
    core = compile_elf(
        out / "core" / "libcore.so.1",
        "int core_value(void) { return 42; }\n",
        soname="libcore.so.1",
    )
    x = compile_elf(
        out / "x" / "libx.so.1",
        "int core_value(void);\nint x_value(void) { return core_value() + 1; }\n",
        soname="libx.so.1",
        needs=[core],
        rpath=RUNPATH,
    )
    dev = compile_elf(
        out / "dev" / "libdev.so.1", "int dev_value(void) { return 7; }\n", soname="libdev.so.1"
    )
    gone = compile_elf(
        out / "gone" / "libgone.so.1", "int gone(void) { return 0; }\n", soname="libgone.so.1"
    )
    broken = compile_elf(
        out / "broken" / "libbroken.so.1",
        "int gone(void);\nint broken(void) { return gone(); }\n",
        soname="libbroken.so.1",
        needs=[gone],
    )
    return Native(core=core, x=x, dev=dev, broken=broken)


@dataclass(frozen=True)
class Env:
    root: Path
    venv: Path
    site: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def devel(self) -> Path:
        return self.site / DEVEL

    @property
    def tar(self) -> Path:
        return self.devel / "devel.tar"

    @property
    def manifest(self) -> Path:
        return self.devel / "devel-manifest.json"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_", "ROCM"))}
        env.update(extra or {})
        return env

    def cli(
        self, *args: str, extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "rocm_sdk", *args],
            capture_output=True,
            text=True,
            env=self.env(extra),
            timeout=120,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.python), "-m", "rocm_sdk", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def code(
        self, source: str, extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-c", source],
            capture_output=True,
            text=True,
            env=self.env(extra),
            timeout=60,
            check=False,
        )

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.devel.iterdir() if p.name.startswith(".root."))


def _metadata(site: Path, dist: str, version: str) -> None:
    escaped = re.sub(r"[-_.]+", "_", dist).lower()
    info = site / f"{escaped}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def make_env(
    tmp_path: Path,
    native: Native,
    *,
    libraries: bool = True,
    devel: bool = True,
    big_file: bool = False,
) -> Env:
    root = tmp_path / "env"
    venv_dir = root / "venv"
    root.mkdir(parents=True)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(venv_dir)
    site = venv_dir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    shutil.copytree(TEMPLATE, site / "rocm_sdk", ignore=shutil.ignore_patterns("__pycache__"))
    packages = {
        "core": {"dist": DISTS["core"], "module": CORE, "extra": None},
        "devel": {"dist": DISTS["devel"], "module": DEVEL, "extra": "devel"},
        "libraries": {"dist": DISTS["libraries"], "module": LIBS, "extra": "libraries"},
    }
    dist_info = {
        "version": VERSION,
        "family": FAMILY,
        "targets": TARGETS,
        "packages": packages,
        "libraries": {
            "core": {"package": "core", "path": "lib/libcore.so.1"},
            "x": {"package": "libraries", "path": "lib/libx.so.1"},
        },
        "preload": ["core"],
        "console_scripts": {
            "hello": {"package": "core", "path": "bin/hello", "test_args": ["--version"]},
        },
        "devel": {
            "root": "root",
            "archive": "devel.tar",
            "manifest": "devel-manifest.json",
            "bin_dir": "bin",
            "cmake_dir": "lib/cmake",
            "cmake_config": "lib/cmake/hip/hip-config.cmake",
        },
    }
    (site / "rocm_sdk" / "_dist_info.json").write_text(json.dumps(dist_info, indent=1))
    _metadata(site, "rocm", VERSION)
    bin_dir = venv_dir / "bin"
    _executable(
        bin_dir / "rocm-sdk",
        f"#!{bin_dir / 'python'}\nimport sys\nfrom rocm_sdk.cli import main\nsys.exit(main())\n",
    )

    (site / CORE / "lib").mkdir(parents=True)
    (site / CORE / "__init__.py").write_text("")
    shutil.copy2(native.core, site / CORE / "lib" / "libcore.so.1")
    hello = _executable(site / CORE / "bin" / "hello", '#!/bin/sh\necho "hello $*"\n')
    _executable(bin_dir / "hello", f'#!/bin/sh\nexec "{hello}" "$@"\n')
    _metadata(site, DISTS["core"], VERSION)
    if libraries:
        (site / LIBS / "lib").mkdir(parents=True)
        (site / LIBS / "__init__.py").write_text("")
        shutil.copy2(native.x, site / LIBS / "lib" / "libx.so.1")
        _metadata(site, DISTS["libraries"], VERSION)
    if devel:
        (site / DEVEL).mkdir()
        (site / DEVEL / "__init__.py").write_text("")
        _metadata(site, DISTS["devel"], VERSION)
        write_devel_archive(
            _devel_entries(root / "devel-src", site, native, big_file=big_file),
            tar_path=site / DEVEL / "devel.tar",
            manifest_path=site / DEVEL / "devel-manifest.json",
            source_date_epoch=SDE,
        )
    return Env(root=root, venv=venv_dir, site=site)


def _runtime_link(path: str, module: str, module_path: str, source: Path) -> DevelEntry:
    return DevelEntry(
        path=path,
        type="runtime-link",
        source=source,  # the same bytes as the runtime file
        target=runtime_link_target(path, module=module, module_path=module_path),
    )


def _devel_entries(src: Path, site: Path, native: Native, *, big_file: bool) -> list[DevelEntry]:
    src.mkdir(parents=True)
    (src / "core.h").write_text("int core_value(void);\n")
    (src / "hip-config.cmake").write_text("set(hip_FOUND TRUE)\n")
    entries = [
        _runtime_link("bin/hello", CORE, "bin/hello", site / CORE / "bin" / "hello"),
        DevelEntry(path="include/core.h", type="file", source=src / "core.h"),
        DevelEntry(
            path="lib/cmake/hip/hip-config.cmake", type="file", source=src / "hip-config.cmake"
        ),
        DevelEntry(path="lib/libcore.so", type="symlink", target="libcore.so.1"),
        _runtime_link("lib/libcore.so.1", CORE, "lib/libcore.so.1", native.core),
        DevelEntry(path="lib/libdev.so.1", type="file", source=native.dev, executable=True),
        _runtime_link("lib/libx.so.1", LIBS, "lib/libx.so.1", native.x),
    ]
    if big_file:
        with open(src / "big.bin", "wb") as handle:
            handle.truncate(BIG)  # sparse: cheap to make, still BIG bytes to copy and hash
        entries.append(DevelEntry(path="share/big.bin", type="file", source=src / "big.bin"))
    return entries


@pytest.fixture
def env(tmp_path: Path, native: Native) -> Env:
    return make_env(tmp_path, native)


def _check_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# -- templates ----------------------------------------------------------------------------------


def test_templates_are_python39_and_packaging_has_no_init() -> None:
    files = sorted(TEMPLATE.glob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "__main__.py", "_info.py", "cli.py"}
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
    assert not (REPO / "packaging" / "__init__.py").exists()
    assert not (REPO / "packaging" / "rocm" / "__init__.py").exists()


# -- version, targets, path -----------------------------------------------------------------------


def test_version_and_targets(env: Env) -> None:
    assert _check_ok(env.cli("version")).strip() == VERSION
    assert _check_ok(env.cli("targets")).strip() == ";".join(TARGETS)
    usage = env.cli()
    assert usage.returncode == 2
    assert "init" in usage.stdout


def test_path_expands_devel_first(env: Env) -> None:
    result = env.cli("path", "--cmake")
    assert _check_ok(result).strip() == str(env.devel / "root" / "lib" / "cmake")
    assert "expanded" in result.stderr
    assert not env.tar.exists()
    again = env.cli("path", "--root")
    assert _check_ok(again).strip() == str(env.devel / "root")
    assert again.stderr == ""
    assert _check_ok(env.cli("path", "--bin")).strip() == str(env.devel / "root" / "bin")


def test_path_without_devel_names_the_extra(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, devel=False)
    result = env.cli("path", "--root")
    assert result.returncode == 1
    assert f"rocm[devel]=={VERSION}" in result.stderr
    assert result.stdout == ""


# -- the Python API -------------------------------------------------------------------------------


def test_find_libraries(env: Env) -> None:
    out = _check_ok(
        env.code("import rocm_sdk\nfor p in rocm_sdk.find_libraries('core', 'x'): print(p)")
    )
    assert out.split() == [
        str(env.site / CORE / "lib/libcore.so.1"),
        str(env.site / LIBS / "lib/libx.so.1"),
    ]


def test_find_libraries_unknown_name(env: Env) -> None:
    result = env.code("import rocm_sdk\nrocm_sdk.find_libraries('rocfoo')")
    assert result.returncode == 1
    assert "ModuleNotFoundError: unknown ROCm library 'rocfoo'" in result.stderr
    assert "provides: core, x" in result.stderr


def test_find_libraries_of_a_missing_wheel_names_the_extra(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, libraries=False)
    result = env.code("import rocm_sdk\nrocm_sdk.find_libraries('x')")
    assert "ModuleNotFoundError" in result.stderr
    assert f'pip install "rocm[libraries]=={VERSION}"' in result.stderr


def test_find_libraries_of_a_damaged_wheel(env: Env) -> None:
    (env.site / LIBS / "lib" / "libx.so.1").unlink()
    result = env.code("import rocm_sdk\nrocm_sdk.find_libraries('x')")
    assert "ModuleNotFoundError" in result.stderr
    assert "is missing although rocm-sdk-libraries-gfx120X-all is installed" in result.stderr


def test_damaged_build_information_is_an_import_error(env: Env) -> None:
    (env.site / "rocm_sdk" / "_dist_info.json").write_text("{not json")
    result = env.code("import rocm_sdk")
    assert result.returncode == 1
    assert "ImportError: " in result.stderr
    assert "_dist_info.json: cannot read the build information" in result.stderr


LOADED = (
    "import rocm_sdk\n{call}\n"
    "maps = open('/proc/self/maps').read()\n"
    "print(sorted({{n for n in ('libcore.so.1', 'libx.so.1') if n in maps}}))\n"
)


@pytest.mark.parametrize(
    ("call", "env_value", "loaded"),
    [
        ("rocm_sdk.initialize_process()", "", ["libcore.so.1"]),
        ("rocm_sdk.initialize_process()", " x ;", ["libcore.so.1", "libx.so.1"]),
        ("rocm_sdk.initialize_process()", "x,core", ["libcore.so.1", "libx.so.1"]),
        ("rocm_sdk.initialize_process(env_override=False)", "x", ["libcore.so.1"]),
        (
            "rocm_sdk.initialize_process(preload_shortnames=['x'])",
            "",
            ["libcore.so.1", "libx.so.1"],
        ),
        ("rocm_sdk.initialize_process(preload_shortnames=[])", "", []),
        ("rocm_sdk.preload_libraries('x', 'x')", "", ["libcore.so.1", "libx.so.1"]),
    ],
)
def test_initialize_process_preloads(
    env: Env, call: str, env_value: str, loaded: list[str]
) -> None:
    # libx needs libcore: loading it pulls libcore in through its RUNPATH.
    out = _check_ok(env.code(LOADED.format(call=call), {"ROCM_SDK_PRELOAD_LIBRARIES": env_value}))
    assert out.strip() == repr(loaded)


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
        (r"re.compile(r'7\.10\.0\.dev\d+')", []),
        ("'7.9.*'", ["RuntimeWarning"]),
        ("'7.10'", ["RuntimeWarning"]),
        ("re.compile('7.9')", ["RuntimeWarning"]),
    ],
)
def test_version_check_warns_on_mismatch(env: Env, check: str, warned: list[str]) -> None:
    out = _check_ok(env.code(VERSION_CHECK.format(check=check, fail=False)))
    assert out.strip() == repr(warned)


def test_version_mismatch_can_fail(env: Env) -> None:
    result = env.code(VERSION_CHECK.format(check="'8.*'", fail=True))
    assert result.returncode == 1
    assert f"RuntimeError: rocm_sdk version {VERSION} does not match the required '8.*'" in (
        result.stderr
    )


# -- rocm-sdk init --------------------------------------------------------------------------------


def test_init_expands_with_hard_links_and_twice_is_a_noop(env: Env) -> None:
    manifest = env.manifest.read_bytes()
    out = _check_ok(env.cli("init"))
    assert "expanded" in out
    root = env.devel / "root"
    assert not env.tar.exists()
    assert env.manifest.read_bytes() == manifest
    for rel, module in (("lib/libcore.so.1", CORE), ("lib/libx.so.1", LIBS), ("bin/hello", CORE)):
        devel_file, runtime = os.stat(root / rel), os.stat(env.site / module / rel)
        assert (devel_file.st_ino, devel_file.st_dev) == (runtime.st_ino, runtime.st_dev)
    assert os.readlink(root / "lib" / "libcore.so") == "libcore.so.1"
    assert (root / "include" / "core.h").read_text() == "int core_value(void);\n"
    assert os.access(root / "lib" / "libdev.so.1", os.X_OK)
    assert not os.access(root / "include" / "core.h", os.X_OK)
    assert env.leftovers() == []
    inode = os.stat(root).st_ino

    again = env.cli("init")
    assert "already initialized" in _check_ok(again)
    assert os.stat(root).st_ino == inode


def _truncate(env: Env) -> None:
    size = env.tar.stat().st_size
    with open(env.tar, "r+b") as handle:
        handle.truncate(size // 2)


def _flip_file_byte(env: Env) -> None:
    data = env.tar.read_bytes()
    offset = data.index(b"int core_value(void);")
    with open(env.tar, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"I")


def _edit_manifest(env: Env, edit: str) -> None:
    manifest = json.loads(env.manifest.read_text())
    entries = manifest["entries"]
    if edit == "sha256":
        entry = next(e for e in entries if e["path"] == "include/core.h")
        entry["sha256"] = hashlib.sha256(b"something else").hexdigest()
    elif edit == "drop":
        manifest["entries"] = [e for e in entries if e["path"] != "lib/libdev.so.1"]
    elif edit == "add":
        entries.append({"path": "lib/zzz.h", "type": "file", "size": 1, "sha256": "0" * 64})
    elif edit == "target":
        entry = next(e for e in entries if e["path"] == "lib/libcore.so")
        entry["target"] = "libdev.so.1"
    env.manifest.write_text(json.dumps(manifest))


def _change_runtime_file(env: Env) -> None:
    with open(env.site / LIBS / "lib" / "libx.so.1", "ab") as handle:
        handle.write(b"\0")


def _uninstall_libraries(env: Env) -> None:
    shutil.rmtree(env.site / LIBS)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "lacks|damaged|unexpected end"),
        (_flip_file_byte, "include/core.h: content does not match"),
        (lambda env: _edit_manifest(env, "sha256"), "include/core.h: content does not match"),
        (lambda env: _edit_manifest(env, "drop"), "which the manifest lacks"),
        (lambda env: _edit_manifest(env, "add"), "lacks 1 of the"),
        (lambda env: _edit_manifest(env, "target"), "differs from the manifest"),
        (_change_runtime_file, "lib/libx.so.1: the runtime file .* differs"),
        (_uninstall_libraries, r"rocm-sdk-libraries-gfx120X-all is not installed"),
    ],
    ids=[
        "truncated",
        "flipped-byte",
        "manifest-sha256",
        "unlisted",
        "missing",
        "link-target",
        "runtime-changed",
        "runtime-absent",
    ],
)
def test_init_failure_keeps_the_previous_state(
    env: Env, damage: Callable[[Env], None], reason: str
) -> None:
    damage(env)
    tar_before = env.tar.read_bytes()
    result = env.cli("init")
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert re.search(reason, result.stderr), result.stderr
    assert env.tar.read_bytes() == tar_before
    assert not (env.devel / "root").exists()
    assert env.leftovers() == []


def _raw_devel(
    env: Env, members: list[tuple[tarfile.TarInfo, bytes]], entries: list[dict[str, object]]
) -> None:
    with tarfile.open(env.tar, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    env.manifest.write_text(json.dumps({"schema": 1, "root": "root", "entries": entries}))


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data


def _file_entry(path: str, data: bytes) -> dict[str, object]:
    return {
        "path": path,
        "type": "file",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": 0o644,
    }


LIB_DIR = {"path": "lib", "type": "dir"}


@pytest.mark.parametrize(
    ("members", "entries", "reason"),
    [
        ([_member("../evil", data=b"x")], [], "'..' component"),
        ([_member("/abs", data=b"x")], [], "not a relative path"),
        (
            [
                _member("lib", tarfile.DIRTYPE),
                _member("lib/x", tarfile.SYMTYPE, link="../../../../etc/passwd"),
            ],
            [LIB_DIR, {"path": "lib/x", "type": "symlink", "target": "../../../../etc/passwd"}],
            "leaves the devel root",
        ),
        (
            [
                _member("lib", tarfile.DIRTYPE),
                _member("lib/x", tarfile.SYMTYPE, link="../../../../../../etc/passwd"),
            ],
            [
                LIB_DIR,
                {
                    "path": "lib/x",
                    "type": "runtime-link",
                    "target": "../../../../../../etc/passwd",
                    "size": 1,
                    "sha256": "0" * 64,
                },
            ],
            "leaves site-packages",
        ),
        (
            [
                _member("lib", tarfile.DIRTYPE),
                _member("lib/x", tarfile.SYMTYPE, link="../../__init__.py"),
            ],
            [
                LIB_DIR,
                {
                    "path": "lib/x",
                    "type": "runtime-link",
                    "target": "../../__init__.py",
                    "size": 0,
                    "sha256": hashlib.sha256(b"").hexdigest(),
                },
            ],
            "is in no runtime package",
        ),
        (
            [_member("lib", tarfile.DIRTYPE), _member("lib/x", tarfile.CHRTYPE)],
            [LIB_DIR, _file_entry("lib/x", b"")],
            "lib/x is a device or fifo in the archive but a file",
        ),
        (
            [_member("lib", tarfile.DIRTYPE), _member("lib/x", tarfile.LNKTYPE, link="lib")],
            [LIB_DIR, _file_entry("lib/x", b"")],
            "lib/x is a hard link in the archive",
        ),
        (
            [_member("lib", tarfile.SYMTYPE, link="."), _member("lib/x", data=b"x")],
            [{"path": "lib", "type": "symlink", "target": "."}, _file_entry("lib/x", b"x")],
            "its directory 'lib' was not extracted before it",
        ),
    ],
    ids=[
        "dotdot",
        "absolute",
        "symlink-escape",
        "runtime-link-escape",
        "runtime-link-devel",
        "device",
        "hardlink",
        "through-symlink",
    ],
)
def test_init_refuses_unsafe_archives(
    env: Env,
    members: list[tuple[tarfile.TarInfo, bytes]],
    entries: list[dict[str, object]],
    reason: str,
) -> None:
    _raw_devel(env, members, entries)
    result = env.cli("init")
    assert result.returncode == 1
    assert reason in result.stderr, result.stderr
    assert env.tar.exists()
    assert not (env.devel / "root").exists()
    assert env.leftovers() == []


def _kill_init_midway(env: Env) -> bool:
    """Start ``init``, SIGKILL it while it writes share/big.bin; False if it finished first."""
    process = env.popen("init")
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None:
            partial = (env.devel / name / "share" / "big.bin" for name in env.leftovers())
            if any(path.exists() for path in partial):
                process.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "init never started extracting"
            time.sleep(0.001)
    finally:
        process.communicate()
    return process.returncode == -signal.SIGKILL


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def test_init_killed_midway_then_rerun(tmp_path: Path, native: Native) -> None:
    # The kill must land during extraction; should a loaded machine let a run finish first,
    # try again in a fresh environment rather than pass without testing anything.
    for attempt in range(3):
        env = make_env(tmp_path / f"attempt{attempt}", native, big_file=True)
        tar_before = _identity(env.tar)
        if _kill_init_midway(env):
            break
    else:
        pytest.fail("rocm-sdk init always finished before it could be killed")
    assert not (env.devel / "root").exists()
    assert _identity(env.tar) == tar_before
    assert len(env.leftovers()) == 1  # the killed run's temporary tree

    _check_ok(env.cli("init"))
    assert (env.devel / "root" / "share" / "big.bin").stat().st_size == BIG
    assert not env.tar.exists()
    assert env.leftovers() == []


def test_concurrent_init(tmp_path: Path, native: Native) -> None:
    env = make_env(tmp_path, native, big_file=True)
    processes = [env.popen("init") for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    said = sorted("expanded" if "expanded" in out else "already" for out, _ in outputs)
    assert said == ["already", "expanded"]
    assert sorted(os.listdir(env.devel / "root")) == ["bin", "include", "lib", "share"]
    assert not env.tar.exists()
    assert env.leftovers() == []


def test_init_replaces_a_stale_tree(env: Env, native: Native) -> None:
    _check_ok(env.cli("init"))
    (env.devel / "root" / "stale.txt").write_text("from an older version")
    write_devel_archive(
        _devel_entries(env.root / "devel-src-2", env.site, native, big_file=False),
        tar_path=env.tar,
        manifest_path=env.manifest,
        source_date_epoch=SDE,
    )
    assert "expanded" in _check_ok(env.cli("init"))
    assert not (env.devel / "root" / "stale.txt").exists()
    assert (env.devel / "root" / "include" / "core.h").exists()
    assert env.leftovers() == []


# -- rocm-sdk test --------------------------------------------------------------------------------


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
    out = _check_ok(env.cli("test", "--junitxml", str(report)))
    results = _lines(out)
    for name in (
        "rocm-sdk --help",
        "rocm-sdk version",
        "rocm-sdk targets",
        "rocm-sdk console script",
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
        "load " + posixpath.join(DEVEL, "root", "lib", "libdev.so.1"),
        "load " + posixpath.join(DEVEL, "root", "lib", "libx.so.1"),
    ):
        assert results.get(name) == "PASS", (name, out)
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


def test_selftest_fails_when_a_library_cannot_load(env: Env, native: Native) -> None:
    shutil.copy2(native.broken, env.site / LIBS / "lib" / "libbroken.so.1")
    report = env.root / "rocm.xml"
    result = env.cli("test", "--junitxml", str(report))
    assert result.returncode == 1
    line = next(text for text in result.stdout.splitlines() if "libbroken" in text)
    assert line.startswith(f"FAIL load {LIBS}/lib/libbroken.so.1: ")
    assert "libgone.so.1" in line
    assert re.search(r"^\d+ passed, 1 failed, \d+ skipped$", result.stdout, re.MULTILINE)
    failures = ET.parse(report).getroot().findall(".//failure")
    assert len(failures) == 1
    assert "libgone.so.1" in (failures[0].get("message") or "")


def test_selftest_fails_on_mixed_versions(env: Env) -> None:
    info = next(env.site.glob("rocm_sdk_core-*.dist-info"))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rocm-sdk-core\nVersion: 7.9.0\n")
    result = env.cli("test")
    assert result.returncode == 1
    assert "FAIL versions: " in result.stdout
    assert "rocm-sdk-core 7.9.0" in result.stdout
    assert f'pip install "rocm[devel,libraries]=={VERSION}"' in result.stdout


def test_selftest_fails_when_a_listed_library_is_missing(env: Env) -> None:
    (env.site / LIBS / "lib" / "libx.so.1").unlink()
    result = env.cli("test")
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
    out = _check_ok(
        env.code(
            "from rocm_sdk._selftest import gfx_name, gpu_targets\n"
            f"print(gpu_targets({str(nodes)!r}), gfx_name(90402), gfx_name(110501))"
        )
    )
    assert out.strip() == "['gfx1100', 'gfx1201', 'gfx90a'] gfx942 gfx1151"
