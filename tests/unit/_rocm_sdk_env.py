"""A hand-built environment for the rocm_sdk runtime tests (packaging/rocm/templates/rocm_sdk).

A throwaway venv whose site-packages holds the template as ``rocm_sdk/`` with a
``_dist_info.json``, platform modules with real tiny shared libraries, dist-info metadata with
RECORD files, console scripts in the venv's bin, and a devel module whose archive comes from
``wheelyard.build.devel.write_devel_archive``. The runtime then runs as users run it:
``<venv>/bin/python -m rocm_sdk ...`` in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _elfbuild import compile_elf

from wheelyard.build.devel import DevelEntry, runtime_link_target, write_devel_archive

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "packaging" / "rocm"
TEMPLATE = PROFILE / "templates" / "rocm_sdk"
VERSION = "7.10.0.dev0"
FAMILY = "gfx120X-all"
OTHER = "gfx110X-all"
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
    cannot_start: Path  # a program whose library is missing: the loader refuses to start it


def build_native(out: Path) -> Native:
    """Compile the libraries and programs of the environment into ``out``."""
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
    cannot_start = compile_elf(
        out / "prog" / "cannot-start",
        "int gone(void);\nint main(void) { return gone(); }\n",
        shared=False,
        needs=[gone],
    )
    return Native(core=core, x=x, dev=dev, broken=broken, cannot_start=cannot_start)


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

    def record(self, dist: str) -> set[str]:
        """Paths listed in the RECORD of ``dist``."""
        (info,) = self.site.glob(f"{re.sub(r'[-_.]+', '_', dist).lower()}-*.dist-info")
        with open(info / "RECORD", newline="") as handle:
            return {row[0] for row in csv.reader(handle) if row}

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


def _metadata(site: Path, dist: str, version: str, files: list[Path]) -> None:
    """A dist-info directory whose RECORD lists ``files`` (and itself)."""
    escaped = re.sub(r"[-_.]+", "_", dist).lower()
    info = site / f"{escaped}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    rows = [f"{p.relative_to(site).as_posix()},," for p in files if p.is_file()]
    rows += [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _package(dist: str, module: str, extra: str | None, **more: object) -> dict[str, object]:
    found = {"dist": dist, "module": module, "extra": extra, "required": extra is None}
    found.update(dist_template=dist, module_template=module, shipped=True)
    found.update(more)
    return found


def _library(name: str, package: str, linux: str, **more: object) -> dict[str, object]:
    row = {"name": name, "package": package, "linux": linux, "windows": ""}
    row.update(optional=False, built=True)
    row.update(more)
    return row


def dist_info(families: tuple[str, ...] = (FAMILY,)) -> dict[str, Any]:
    """The ``_dist_info.json`` of the hand-built environment (the build's schema 2)."""
    libraries = _package(
        DISTS["libraries"],
        LIBS,
        "libraries",
        dist_template="rocm-sdk-libraries-{target_family}",
        module_template="_rocm_sdk_libraries_{target_family_ident}",
    )
    devel = _package(
        DISTS["devel"],
        DEVEL,
        "devel",
        dist_template="rocm-sdk-devel-{target_family}",
        module_template="_rocm_sdk_devel_{target_family_ident}",
    )
    return {
        "schema": 2,
        "version": VERSION,
        "family": FAMILY,
        "targets": TARGETS,
        "meta": "rocm",
        "py_package_suffix_nonce": "",
        "target_families": {
            "available": list(families),
            "default": FAMILY,
            "linux": [],
            "windows": [],
            "targets": {FAMILY: TARGETS, OTHER: ["gfx1100", "gfx1101"]},
        },
        "packages": {
            "core": _package(DISTS["core"], CORE, None),
            "devel": devel,
            "libraries": libraries,
            "profiler": _package(
                "rocm-sdk-profiler", "_rocm_sdk_profiler", "profiler", shipped=False
            ),
        },
        "libraries": [
            _library("core", "core", "lib/libcore.so*", windows="bin/core*.dll"),
            _library("x", "libraries", "lib/libx.so*"),
            _library("absent", "core", "lib/libabsent.so*", built=False),
            _library("maybe", "core", "lib/libmaybe*.so*", optional=True, built=False),
        ],
        "console_scripts": {
            "hello": {"package": "core", "path": "bin/hello", "test_args": ["--version"]},
        },
        "devel": {
            "package": "devel",
            "root": "root",
            "archive": "devel.tar",
            "manifest": "devel-manifest.json",
            "bin_dir": "bin",
            "cmake_dir": "lib/cmake",
            "cmake_config": "lib/cmake/hip/hip-config.cmake",
        },
    }


def add_console_script(
    env: Env, name: str, program: Path, *, needs_gpu: bool = False, needs_devel: bool = False
) -> None:
    """Install ``program`` as a core console script listed in ``_dist_info.json``."""
    installed = env.site / CORE / "bin" / name
    installed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(program, installed)
    executable(env.venv / "bin" / name, f'#!/bin/sh\nexec "{installed}" "$@"\n')
    path = env.site / "rocm_sdk" / "_dist_info.json"
    document = json.loads(path.read_text())
    document["console_scripts"][name] = {
        "package": "core",
        "path": f"bin/{name}",
        "test_args": [],
        "needs_gpu": needs_gpu,
        "needs_devel": needs_devel,
    }
    path.write_text(json.dumps(document))


def make_env(
    tmp_path: Path,
    native: Native,
    *,
    libraries: bool = True,
    devel: bool = True,
    big_file: bool = False,
    families: tuple[str, ...] = (FAMILY,),
) -> Env:
    root = tmp_path / "env"
    venv_dir = root / "venv"
    root.mkdir(parents=True)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(venv_dir)
    site = venv_dir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    shutil.copytree(TEMPLATE, site / "rocm_sdk", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "rocm_sdk" / "_dist_info.json").write_text(json.dumps(dist_info(families), indent=1))
    _metadata(site, "rocm", VERSION, sorted((site / "rocm_sdk").rglob("*")))
    bin_dir = venv_dir / "bin"
    executable(
        bin_dir / "rocm-sdk",
        f"#!{bin_dir / 'python'}\nimport sys\nfrom rocm_sdk.__main__ import main\n"
        "sys.exit(main())\n",
    )

    (site / CORE / "lib").mkdir(parents=True)
    (site / CORE / "__init__.py").write_text("")
    shutil.copy2(native.core, site / CORE / "lib" / "libcore.so.1")
    hello = executable(site / CORE / "bin" / "hello", '#!/bin/sh\necho "hello $*"\n')
    executable(bin_dir / "hello", f'#!/bin/sh\nexec "{hello}" "$@"\n')
    _metadata(site, DISTS["core"], VERSION, sorted((site / CORE).rglob("*")))
    if libraries:
        (site / LIBS / "lib").mkdir(parents=True)
        (site / LIBS / "__init__.py").write_text("")
        shutil.copy2(native.x, site / LIBS / "lib" / "libx.so.1")
        _metadata(site, DISTS["libraries"], VERSION, sorted((site / LIBS).rglob("*")))
    if devel:
        (site / DEVEL).mkdir()
        (site / DEVEL / "__init__.py").write_text("")
        write_devel_archive(
            devel_entries(root / "devel-src", site, native, big_file=big_file),
            tar_path=site / DEVEL / "devel.tar",
            manifest_path=site / DEVEL / "devel-manifest.json",
            source_date_epoch=SDE,
        )
        _metadata(site, DISTS["devel"], VERSION, sorted((site / DEVEL).rglob("*")))
    return Env(root=root, venv=venv_dir, site=site)


def _runtime_link(path: str, module: str, module_path: str, source: Path) -> DevelEntry:
    return DevelEntry(
        path=path,
        type="runtime-link",
        source=source,  # the same bytes as the runtime file
        target=runtime_link_target(path, module=module, module_path=module_path),
    )


def devel_entries(src: Path, site: Path, native: Native, *, big_file: bool) -> list[DevelEntry]:
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


def check_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
