"""Helpers of the self tests: running programs as a user would, finding libraries and GPUs."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from rocm_sdk import _info

# Tests point this at a file of their own to act as a machine with a GPU.
KFD_DEVICE = os.environ.get("ROCM_SDK_TEST_KFD_DEVICE", "/dev/kfd")
KFD_TOPOLOGY = "/sys/class/kfd/kfd/topology/nodes"
TIMEOUT = 300
LOADER_ERROR = "error while loading shared libraries"
_LOAD_SNIPPET = "import ctypes, sys\nctypes.CDLL(sys.argv[1])\n"


class Ran(NamedTuple):
    """The outcome of a program: exit code (None: timed out or could not start) and output."""

    returncode: Optional[int]
    stdout: str
    stderr: str

    def tail(self) -> str:
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else "no output"

    def describe(self) -> str:
        if self.returncode is None:
            return self.stderr or "did not run"
        return f"exit code {self.returncode}: {self.tail()}"

    def loader_failed(self) -> bool:
        """The dynamic loader could not start the program (a missing or broken library)."""
        return self.returncode == 127 or LOADER_ERROR in self.stdout + self.stderr


def info() -> _info.DistInfo:
    return _info.load()


def site_packages() -> Path:
    return _info.HERE.parent


def gpu_present() -> bool:
    return os.path.exists(KFD_DEVICE)


def child_env() -> Dict[str, str]:
    """This process's environment without loader paths or preload requests."""
    env = dict(os.environ)
    for name in ("LD_LIBRARY_PATH", "LD_PRELOAD", "ROCM_SDK_PRELOAD_LIBRARIES"):
        env.pop(name, None)
    return env


def run(command: Sequence[str], *, timeout: float = TIMEOUT) -> Ran:
    """Run ``command`` without stdin; never raises for the program's own failures."""
    try:
        done = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=child_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Ran(None, "", f"timed out after {timeout:.0f} s")
    except OSError as exc:
        return Ran(None, "", f"cannot run {command[0]}: {exc}")
    return Ran(done.returncode, done.stdout, done.stderr)


def cli(*args: str) -> Ran:
    """``python -m rocm_sdk ARGS`` with this interpreter."""
    return run([sys.executable, "-m", "rocm_sdk", *args])


def script_dirs() -> List[str]:
    dirs = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    return list(dict.fromkeys(directory for directory in dirs if directory))


def find_script(name: str) -> Optional[str]:
    """A console script installed with this Python (its bin dir, then the user scheme's)."""
    return shutil.which(name, path=os.pathsep.join(script_dirs()))


def installed_packages(dist_info: _info.DistInfo) -> Dict[str, Path]:
    """Installed runtime packages: key -> module directory."""
    found = {}
    for package in dist_info.runtime_packages():
        directory = _info.package_dir(package)
        if directory is not None:
            found[package.key] = directory
    return found


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


def load_each(libraries: List[Path]) -> List[Tuple[Path, Ran]]:
    """``ctypes.CDLL`` of each library in its own fresh Python process (several at a time)."""

    def load(path: Path) -> Tuple[Path, Ran]:
        return path, run([sys.executable, "-c", _LOAD_SNIPPET, str(path)])

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(load, libraries))


def relative_name(path: Path) -> str:
    return os.path.relpath(str(path), str(site_packages()))


def _is_host_shared_object(path: str) -> bool:
    header = _elf_header(path)
    if header is None:
        return False
    host = _host_header()
    if host is not None and header[4:6] + header[18:20] != host[4:6] + host[18:20]:
        return False
    e_type = int.from_bytes(header[16:18], "little" if header[5] == 1 else "big")
    return e_type == 3  # ET_DYN


@functools.lru_cache(maxsize=1)
def _host_header() -> Optional[bytes]:
    """The interpreter's ELF header: read once, compared with every candidate library."""
    return _elf_header(os.path.realpath(sys.executable))


def _elf_header(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    return header if len(header) == 20 and header.startswith(b"\x7fELF") else None


def gpu_targets(topology: str = KFD_TOPOLOGY) -> List[str]:
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
