"""Fresh virtual environments holding the built wheels, for tests that use them as a user would.

pip and uv run isolated from the machine's configuration (no config files, no index, no find-links
or constraints from the environment), and nothing a test runs inside a venv sees
``LD_LIBRARY_PATH``, ``LD_PRELOAD`` or ``PYTHONPATH``: a library that loads here loads because
its RUNPATH is right.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from wheelyard.elf.read import read_elf

UV = Path(sys.executable).parent / "uv"
_DROPPED_PREFIXES = ("PIP_", "UV_", "VIRTUAL_ENV", "CONDA_", "PYTHON", "ROCM_SDK_")
_DROPPED = {"LD_LIBRARY_PATH", "LD_PRELOAD"}
_SITE = "import sysconfig; print(sysconfig.get_path('platlib'))"
_LOAD = """
import ctypes, sys
ctypes.CDLL(sys.argv[1])
with open("/proc/self/maps") as maps:
    mapped = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
print("\\n".join(sorted(path for path in mapped if path.startswith("/"))))
"""


def isolated_env(tmp: Path) -> dict[str, str]:
    """The caller's environment without installer, loader or Python path configuration."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_PREFIXES)
        and key not in _DROPPED
        and key.lower() not in proxies
    }
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        XDG_CONFIG_HOME=str(tmp / "config"),
    )
    return env


def run(
    cmd: Sequence[str | Path],
    env: Mapping[str, str],
    *,
    cwd: Path,
    check: bool = True,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in cmd],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, _describe(cmd, result)
    return result


def _describe(cmd: Sequence[str | Path], result: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(map(str, cmd))
    return f"$ {command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


@dataclass(frozen=True)
class Venv:
    root: Path
    env: Mapping[str, str]
    site_packages: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def run(
        self, *cmd: str | Path, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the venv's directory with the isolated environment."""
        return run(cmd, self.env, cwd=self.root, check=check, timeout=timeout)

    def script(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a console script installed in the venv's bin directory."""
        return self.run(self.bin / name, *args, check=check)

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "pip", *args)

    def load(self, library: Path) -> subprocess.CompletedProcess[str]:
        """``ctypes.CDLL(library)`` in a fresh isolated Python process; stdout lists the files
        mapped into that process afterwards."""
        return self.run(self.python, "-I", "-c", _LOAD, library, check=False, timeout=60)

    def dists(self) -> dict[str, str]:
        """Installed distributions (lowercased name -> version), pip and setuptools left out."""
        code = (
            "import importlib.metadata as m\n"
            "for d in m.distributions(): print(d.metadata['Name'].lower(), d.version)\n"
        )
        lines = self.run(self.python, "-I", "-c", code).stdout.split("\n")
        found = dict(line.split(" ", 1) for line in lines if line.strip())
        return {name: v for name, v in found.items() if name not in {"pip", "setuptools"}}


def _with_site(root: Path, env: Mapping[str, str]) -> Venv:
    python = root / "bin" / "python"
    site = run([python, "-I", "-c", _SITE], env, cwd=root).stdout.strip()
    return Venv(root=root, env=dict(env), site_packages=Path(site).resolve())


def create_pip_venv(root: Path, env: Mapping[str, str]) -> Venv:
    """``python -m venv`` with pip in it."""
    run([sys.executable, "-m", "venv", root], env, cwd=root.parent)
    return _with_site(root, env)


def create_uv_venv(root: Path, env: Mapping[str, str]) -> Venv:
    run([UV, "venv", "--quiet", "--python", sys.executable, root], env, cwd=root.parent)
    return _with_site(root, env)


def find_links(build: Path, family: str) -> list[str]:
    """Installer arguments for a build output: no index, the generic and the family's wheels."""
    dist = build / "dist"
    return ["--no-index", "--find-links", str(dist), "--find-links", str(dist / family)]


def is_shared_library_name(name: str) -> bool:
    return fnmatch(name, "*.so") or fnmatch(name, "*.so.*")


def shared_libraries(top: Path) -> list[Path]:
    """Regular files below ``top`` named ``*.so``/``*.so.*`` that are ELF shared objects of this
    machine (ET_DYN, not programs); ``.debug`` directories (split debug info) are skipped."""
    found = []
    for directory, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != ".debug")
        for name in sorted(files):
            path = Path(directory, name)
            if not is_shared_library_name(name) or path.is_symlink():
                continue
            info = read_elf(path)
            if (
                info is not None
                and info.elf_type == "ET_DYN"
                and not info.is_executable
                and info.machine == platform.machine()
            ):
                found.append(path)
    return found
