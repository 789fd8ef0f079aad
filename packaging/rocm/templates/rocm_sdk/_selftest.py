"""``rocm-sdk test``: check that the installed ROCm wheels work on this machine.

Prints ``PASS name``, ``FAIL name: reason`` or ``SKIP name: reason`` per check, then a summary;
returns 1 if any check failed. Every shared library is loaded in a fresh Python process without
``LD_LIBRARY_PATH``, as a user's program would load it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from rocm_sdk import _devel, _info

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
KFD_DEVICE = "/dev/kfd"
KFD_TOPOLOGY = "/sys/class/kfd/kfd/topology/nodes"
TIMEOUT = 300
_LOAD_SNIPPET = (
    "import ctypes, sys\n"
    "if sys.argv[2] == 'preload':\n"
    "    import rocm_sdk\n"
    "    rocm_sdk.initialize_process()\n"
    "ctypes.CDLL(sys.argv[1])\n"
)
_GFX = re.compile(r"gfx[0-9a-z]+")
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class _Fail(Exception):
    pass


class _Skip(Exception):
    pass


@dataclass(frozen=True)
class Result:
    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} {self.name}" + (f": {self.reason}" if self.reason else "")


class _Session:
    def __init__(self) -> None:
        self.results: List[Result] = []
        self.started = time.monotonic()

    def add(self, result: Result) -> None:
        self.results.append(result)
        print(result.line(), flush=True)

    def check(self, name: str, function: Callable[[], object]) -> bool:
        """Run one check; True if it passed."""
        start = time.monotonic()
        try:
            function()
        except _Skip as exc:
            status, reason = SKIP, str(exc)
        except _Fail as exc:
            status, reason = FAIL, str(exc)
        except Exception as exc:  # a bug or an unexpected state: report it, keep going
            status, reason = FAIL, f"{type(exc).__name__}: {exc}"
        else:
            status, reason = PASS, ""
        self.add(Result(name, status, reason, time.monotonic() - start))
        return status == PASS

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)


def run(*, junitxml: Optional[str] = None) -> int:
    """Run every check; 0 if none failed."""
    info = _info.load()
    session = _Session()
    _check_cli(session, info)
    installed = _check_layout(session, info)
    session.check("library table", lambda: _library_table(info, installed))
    _check_runtime_libraries(session, info, installed)
    _check_console_scripts(session, info, installed)
    session.check("versions", lambda: _versions(info, installed))
    _check_devel(session, info)
    session.check("gpu family", lambda: _gpu_family(info))
    passed, failed, skipped = session.count(PASS), session.count(FAIL), session.count(SKIP)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    if junitxml:
        write_junit(session.results, junitxml, time.monotonic() - session.started)
    return 1 if failed else 0


# -- the rocm-sdk command ---------------------------------------------------------------------


def _check_cli(session: _Session, info: _info.DistInfo) -> None:
    def help_runs() -> None:
        if "usage" not in _cli("--help").lower():
            raise _Fail("no usage text")

    def version_runs() -> None:
        out = _cli("version").strip()
        if "." not in out or out != info.version:
            raise _Fail(f"printed {out!r}, expected {info.version!r}")

    def targets_run() -> None:
        targets = [part for part in _cli("targets").strip().split(";") if part]
        if not targets or not all(_GFX.fullmatch(target) for target in targets):
            raise _Fail(f"printed {targets!r}, expected gfx targets")

    def script_runs() -> None:
        script = find_script("rocm-sdk")
        if script is None:
            raise _Fail(f"the rocm-sdk command is not installed in {', '.join(_script_dirs())}")
        _run([script, "version"])

    session.check("rocm-sdk --help", help_runs)
    session.check("rocm-sdk version", version_runs)
    session.check("rocm-sdk targets", targets_run)
    session.check("rocm-sdk console script", script_runs)


# -- runtime packages -------------------------------------------------------------------------


def _check_layout(session: _Session, info: _info.DistInfo) -> Dict[str, Path]:
    """Installed runtime packages (key -> module dir); each must sit beside rocm_sdk."""
    installed: Dict[str, Path] = {}
    for package in info.runtime_packages():
        directory = _info.package_dir(package)
        if directory is None:
            if package.extra is None:
                message = f"{package.dist} is not installed; {info.install_hint(package)}"
                session.add(Result(f"installed {package.dist}", FAIL, message))
            continue
        installed[package.key] = directory

        def sibling(directory: Path = directory) -> None:
            if directory.parent != _info.HERE.parent:
                raise _Fail(f"{directory} is not beside {_info.HERE} (mixed install locations)")

        session.check(f"{package.module} beside rocm_sdk", sibling)
    return installed


def _check_runtime_libraries(
    session: _Session, info: _info.DistInfo, installed: Dict[str, Path]
) -> None:
    preloaded_by = {info.libraries[name].package for name in info.preload if name in info.libraries}
    for package in info.runtime_packages():
        directory = installed.get(package.key)
        if directory is None:
            if package.extra is not None:
                reason = f"{package.dist} not installed ({info.install_hint(package)})"
                session.add(Result(f"load {package.module}", SKIP, reason))
            continue
        mode = "plain" if package.key in preloaded_by else "preload"
        _load_all(session, shared_libraries(directory), mode)


def _check_console_scripts(
    session: _Session, info: _info.DistInfo, installed: Dict[str, Path]
) -> None:
    for name in sorted(info.console_scripts):
        script = info.console_scripts[name]
        package = info.packages.get(script.package)
        label = f"console script {name}"
        if package is None or script.package not in installed:
            dist = package.dist if package is not None else script.package
            session.add(Result(label, SKIP, f"{dist} not installed"))
            continue

        def runs(name: str = name, args: Sequence[str] = script.test_args) -> None:
            found = find_script(name)
            if found is None:
                raise _Fail(f"not installed in {', '.join(_script_dirs())}")
            _run([found, *args])

        session.check(label, runs)


def _versions(info: _info.DistInfo, installed: Dict[str, Path]) -> None:
    from importlib import metadata

    dists = [info.meta] + [info.packages[key].dist for key in sorted(installed)]
    devel = info.devel_package()
    if devel is not None and _info.package_dir(devel) is not None:
        dists.append(devel.dist)
    extras = sorted(
        package.extra
        for package in info.packages.values()
        if package.extra and package.dist in dists
    )
    wrong = []
    for dist in dists:
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found = "no metadata"
        if found != info.version:
            wrong.append(f"{dist} {found}")
    if wrong:
        wanted = f"{info.meta}[{','.join(extras)}]" if extras else info.meta
        raise _Fail(
            f"expected every package at {info.version}, found: {', '.join(wrong)}; reinstall "
            f'with: pip install "{wanted}=={info.version}"'
        )


def _library_table(info: _info.DistInfo, installed: Dict[str, Path]) -> None:
    missing = [
        f"{name} ({library.path})"
        for name, library in sorted(info.libraries.items())
        if library.package in installed
        and not installed[library.package].joinpath(*library.path.split("/")).is_file()
    ]
    if missing:
        raise _Fail(
            f"listed in rocm_sdk but missing from the installed wheels: {', '.join(missing)}"
        )


# -- devel --------------------------------------------------------------------------------------


def _check_devel(session: _Session, info: _info.DistInfo) -> None:
    try:
        paths = _devel.locate(info)
    except _info.RocmSdkError as exc:
        session.add(Result("devel", SKIP, str(exc)))
        return
    if not session.check("devel init", lambda: _run(_cli_command("init"))):
        session.add(Result("devel paths", SKIP, "rocm-sdk init failed"))
        return
    expected = {"root": paths.root, "bin": paths.bin_dir, "cmake": paths.cmake_dir}
    for flag in sorted(expected):

        def path_prints(flag: str = flag) -> None:
            printed = _cli("path", f"--{flag}").strip()
            if Path(printed) != expected[flag] or not Path(printed).is_dir():
                raise _Fail(f"printed {printed!r}, expected the directory {expected[flag]}")

        session.check(f"rocm-sdk path --{flag}", path_prints)

    def cmake_config() -> None:
        if not paths.layout.cmake_config:
            raise _Skip("this build names no cmake config")
        if not paths.cmake_config.is_file():
            raise _Fail(f"{paths.cmake_config} does not exist")

    session.check("devel cmake config", cmake_config)
    session.check("devel hard links", lambda: _hard_links(paths))
    _load_all(session, shared_libraries(paths.root), "preload")


def _hard_links(paths: _devel.DevelPaths) -> None:
    links = [
        entry for entry in _devel.read_manifest(paths.manifest) if entry["type"] == "runtime-link"
    ]
    wrong = []
    for entry in links:
        devel_file = paths.root.joinpath(*entry["path"].split("/"))
        runtime = _devel.runtime_file(paths, entry["path"], entry["target"])
        try:
            a, b = os.stat(devel_file, follow_symlinks=False), os.stat(runtime)
            same = (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
        except OSError:
            same = False
        if not same:
            wrong.append(entry["path"])
    if wrong:
        raise _Fail(
            f"{len(wrong)} of {len(links)} devel files are not hard links of their runtime files: "
            + ", ".join(wrong[:5])
        )


# -- GPU ------------------------------------------------------------------------------------------


def _gpu_family(info: _info.DistInfo) -> None:
    if not os.path.exists(KFD_DEVICE):
        raise _Skip(f"no GPU visible ({KFD_DEVICE} absent)")
    gpus = gpu_targets(KFD_TOPOLOGY)
    if not gpus:
        raise _Skip(f"no GPU agents listed in {KFD_TOPOLOGY}")
    if not any(gpu in info.targets for gpu in gpus):
        raise _Fail(
            f"this machine's GPUs ({', '.join(gpus)}) are not covered by the installed family "
            f"{info.family} ({';'.join(info.targets)}); install the rocm packages of a family "
            "that covers them"
        )


def gpu_targets(topology: str) -> List[str]:
    """gfx targets of the GPU agents listed by the KFD topology (sorted, unique)."""
    found = set()
    for properties in sorted(glob.glob(os.path.join(topology, "*", "properties"))):
        try:
            with open(properties, encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        match = re.search(r"^gfx_target_version\s+(\d+)\s*$", text, re.MULTILINE)
        if match and int(match.group(1)):
            found.add(gfx_name(int(match.group(1))))
    return sorted(found)


def gfx_name(target_version: int) -> str:
    """KFD's gfx_target_version (e.g. 90010) as a target name (gfx90a)."""
    major, minor, step = target_version // 10000, target_version // 100 % 100, target_version % 100
    return f"gfx{major}{minor:x}{step:x}"


# -- helpers --------------------------------------------------------------------------------------


def shared_libraries(top: Path) -> List[Path]:
    """Regular files below ``top`` named ``*.so``/``*.so.*`` that are shared libraries of this
    machine's architecture (symlinks are aliases and are not listed). Separate debug-info files
    (``.debug/`` directories, ``*.debug``) are ELF but not loadable, and are skipped."""
    found = []
    for directory, dirs, files in os.walk(str(top)):
        dirs[:] = sorted(d for d in dirs if d != ".debug")
        for name in sorted(files):
            if not (fnmatch.fnmatch(name, "*.so") or fnmatch.fnmatch(name, "*.so.*")):
                continue
            if name.endswith(".debug"):
                continue
            path = os.path.join(directory, name)
            if not os.path.islink(path) and _is_host_shared_object(path):
                found.append(Path(path))
    return found


def _load_all(session: _Session, libraries: List[Path], mode: str) -> None:
    site = _info.HERE.parent

    def load(path: Path) -> Result:
        start = time.monotonic()
        command = [sys.executable, "-c", _LOAD_SNIPPET, str(path), mode]
        status, reason = PASS, ""
        try:
            _run(command)
        except _Fail as exc:
            status, reason = FAIL, str(exc)
        name = os.path.relpath(str(path), str(site))
        return Result(f"load {name}", status, reason, time.monotonic() - start)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(load, libraries):
            session.add(result)


def _is_host_shared_object(path: str) -> bool:
    header = _elf_header(path)
    if header is None:
        return False
    host = _elf_header(os.path.realpath(sys.executable))
    if host is not None and header[4:6] + header[18:20] != host[4:6] + host[18:20]:
        return False
    e_type = int.from_bytes(header[16:18], "little" if header[5] == 1 else "big")
    return e_type == 3  # ET_DYN


def _elf_header(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    return header if len(header) == 20 and header.startswith(b"\x7fELF") else None


def _script_dirs() -> List[str]:
    dirs = [os.path.dirname(sys.executable)]
    dirs.append(sysconfig.get_path("scripts"))
    with contextlib.suppress(KeyError):
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    return list(dict.fromkeys(directory for directory in dirs if directory))


def find_script(name: str) -> Optional[str]:
    """A console script installed with this Python (its bin dir, then the user scheme's)."""
    return shutil.which(name, path=os.pathsep.join(_script_dirs()))


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    env.pop("ROCM_SDK_PRELOAD_LIBRARIES", None)
    return env


def _cli_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "rocm_sdk", *args]


def _cli(*args: str) -> str:
    return _run(_cli_command(*args))


def _run(command: Sequence[str]) -> str:
    """Run ``command``; its stdout, or _Fail with the tail of its output."""
    try:
        done = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            errors="replace",
            env=_child_env(),
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Fail(str(exc)) from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise _Fail(f"exit code {done.returncode}: {tail[0]}")
    return done.stdout


def write_junit(results: Sequence[Result], path: str, seconds: float) -> None:
    """Write ``results`` as JUnit XML (one testsuite, one testcase per check)."""
    attributes = {
        "name": "rocm-sdk test",
        "tests": str(len(results)),
        "failures": str(sum(1 for result in results if result.status == FAIL)),
        "errors": "0",
        "skipped": str(sum(1 for result in results if result.status == SKIP)),
        "time": f"{seconds:.3f}",
    }
    suites = ET.Element("testsuites", attributes)
    suite = ET.SubElement(suites, "testsuite", attributes)
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": "rocm_sdk", "name": result.name, "time": f"{result.seconds:.3f}"},
        )
        reason = _XML_UNSAFE.sub("?", result.reason)
        if result.status == FAIL:
            ET.SubElement(case, "failure", {"message": reason}).text = reason
        elif result.status == SKIP:
            ET.SubElement(case, "skipped", {"message": reason})
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
