"""Fresh environments and the safe install command, for pip and uv (pure command planning)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

InstallerName = Literal["pip", "uv"]
_DROPPED_PREFIXES = ("PIP_", "UV_", "VIRTUAL_ENV", "CONDA_", "PYTHON")
_DROPPED = frozenset({"LD_LIBRARY_PATH", "LD_PRELOAD"})


@dataclass(frozen=True, kw_only=True)
class InstallSource:
    """Where our packages come from, and where (if anywhere) their dependencies may come from."""

    find_links: tuple[str, ...]
    """Flat pages or directories holding every one of our wheels."""
    our_index: str | None = None
    """A simple index holding our wheels (used with ``deps_index``)."""
    deps_index: str | None = None
    """An index for dependencies that are not in ``find_links``; None: nothing else is needed."""
    constraints: Path | None = None
    """pip only: a constraints file pinning each of our projects to one of our wheels."""
    pre: bool = False


class Installer(Protocol):
    """Makes a fresh environment and installs requirements into it."""

    @property
    def name(self) -> InstallerName: ...

    def create_command(self, root: Path) -> list[str]: ...

    def install_command(self, root: Path, requirement: str, source: InstallSource) -> list[str]: ...


def _python(root: Path) -> Path:
    return root / "bin" / "python"


@dataclass(frozen=True, kw_only=True)
class PipInstaller:
    """``python -m venv`` and ``python -m pip install`` inside it."""

    name: InstallerName = "pip"
    python: str = sys.executable

    def create_command(self, root: Path) -> list[str]:
        return [self.python, "-m", "venv", str(root)]

    def install_command(self, root: Path, requirement: str, source: InstallSource) -> list[str]:
        cmd = [str(_python(root)), "-m", "pip", "install", "--no-cache-dir", "--only-binary=:all:"]
        cmd += ["--pre"] if source.pre else []
        if source.deps_index is None:
            cmd.append("--no-index")
        else:
            # pip has no per-project index: dependencies come from the one index, and each of our
            # projects is pinned by the constraints file to a wheel of our find-links.
            cmd += ["--index-url", source.deps_index]
            if source.constraints is not None:
                cmd += ["--constraint", str(source.constraints)]
        for link in source.find_links:
            cmd += ["--find-links", link]
        return [*cmd, requirement]


@dataclass(frozen=True, kw_only=True)
class UvInstaller:
    """``uv venv`` and ``uv pip install --python`` into it."""

    name: InstallerName = "uv"
    uv: str = "uv"
    python: str = sys.executable

    def create_command(self, root: Path) -> list[str]:
        return [self.uv, "venv", "--quiet", "--seed", "--python", self.python, str(root)]

    def install_command(self, root: Path, requirement: str, source: InstallSource) -> list[str]:
        cmd = [self.uv, "pip", "install", "--python", str(_python(root)), "--no-cache"]
        cmd += ["--prerelease=allow"] if source.pre else []
        if source.deps_index is None or source.our_index is None:
            cmd.append("--no-index")
            for link in source.find_links:
                cmd += ["--find-links", link]
        else:
            # first-index (uv's default): a project found in our index is never looked up in
            # the default index, so a public upload cannot shadow one of ours.
            cmd += ["--index", source.our_index, "--default-index", source.deps_index]
        return [*cmd, requirement]


INSTALLERS: Mapping[InstallerName, Installer] = {"pip": PipInstaller(), "uv": UvInstaller()}


def installer_for(name: str, *, uv: str | None = None) -> Installer:
    """The registered installer ``name`` (``uv`` optionally at another path)."""
    if name == "uv" and uv is not None:
        return UvInstaller(uv=uv)
    for known, installer in INSTALLERS.items():
        if known == name:
            return installer
    raise KeyError(name)


def isolated_environment(environ: Mapping[str, str], cache: Path) -> dict[str, str]:
    """``environ`` without installer, loader or Python path configuration of the machine."""
    env = {
        key: value
        for key, value in environ.items()
        if not key.startswith(_DROPPED_PREFIXES) and key not in _DROPPED
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(cache),
        UV_PYTHON_DOWNLOADS="never",
    )
    return env
