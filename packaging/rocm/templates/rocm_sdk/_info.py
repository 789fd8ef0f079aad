"""What this ``rocm`` meta wheel was built with, and where its platform wheels are installed.

``_dist_info.json`` is written next to this file when the meta wheel is built. The platform
wheels install top-level packages (``_rocm_sdk_core``, ``_rocm_sdk_libraries_<family>``, ...)
beside ``rocm_sdk`` in site-packages; they are located with ``importlib.util.find_spec`` so
nothing is imported. ``import rocm_sdk`` happens at every framework start-up, so this module
keeps to cheap imports (named tuples, not dataclasses).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

DIST_INFO_FILE = "_dist_info.json"
SCHEMA = 2
HERE = Path(__file__).resolve().parent


class RocmSdkError(Exception):
    """A problem the user can fix; the CLI prints it without a traceback and exits 1."""


class Package(NamedTuple):
    key: str
    dist: str  # for this meta wheel's family
    module: str  # likewise
    extra: Optional[str]
    dist_template: str  # "{target_family}" where the family goes
    module_template: str  # "{target_family_ident}" where the family goes
    required: bool
    shipped: bool  # this build wrote a wheel of it


class Library(NamedTuple):
    name: str
    package: str
    linux: str  # glob below the package's install directory
    windows: str  # likewise, "" when not shipped on Windows
    optional: bool
    built: bool  # the build found a file matching ``linux`` in its package


class ConsoleScript(NamedTuple):
    name: str
    package: str
    path: str
    test_args: Tuple[str, ...]
    needs_gpu: bool
    needs_devel: bool


class DevelLayout(NamedTuple):
    package: str
    root: str
    archive: str
    manifest: str
    bin_dir: str
    cmake_dir: str
    cmake_config: str


class TargetFamilies(NamedTuple):
    available: Tuple[str, ...]
    default: str
    linux: Tuple[str, ...]
    windows: Tuple[str, ...]
    targets: Dict[str, Tuple[str, ...]]


class DistInfo(NamedTuple):
    version: str
    family: str
    targets: Tuple[str, ...]
    meta: str
    nonce: str
    families: TargetFamilies
    packages: Dict[str, Package]
    libraries: Tuple[Library, ...]
    console_scripts: Dict[str, ConsoleScript]
    devel: Optional[DevelLayout]

    def runtime_packages(self) -> List[Package]:
        """Every shipped package except the devel one, sorted by key."""
        devel = self.devel.package if self.devel is not None else None
        return [
            self.packages[key]
            for key in sorted(self.packages)
            if key != devel and self.packages[key].shipped
        ]

    def devel_package(self) -> Optional[Package]:
        if self.devel is None:
            return None
        package = self.packages.get(self.devel.package)
        return package if package is not None and package.shipped else None

    def install_hint(self, package: Package) -> str:
        """The command that installs ``package`` at this meta wheel's version."""
        if package.extra:
            return f'pip install "{self.meta}[{package.extra}]=={self.version}"'
        return f'pip install --force-reinstall "{package.dist}=={self.version}"'


_LOADED: Optional[DistInfo] = None


def load() -> DistInfo:
    """Read ``_dist_info.json`` once per process."""
    global _LOADED
    if _LOADED is None:
        _LOADED = _parse(HERE / DIST_INFO_FILE)
    return _LOADED


def module_dir(module: str) -> Optional[Path]:
    """The directory of the installed top-level package ``module``, or None if not installed.

    A directory without ``__init__.py`` (a namespace package, e.g. leftovers of an uninstalled
    wheel) does not count as installed.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return None
    locations = list(spec.submodule_search_locations)
    return Path(os.path.realpath(locations[0]))


def package_dir(package: Package) -> Optional[Path]:
    return module_dir(package.module)


def _parse(path: Path) -> DistInfo:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RocmSdkError(
            f"{path}: cannot read the build information of the rocm package ({exc}); "
            'reinstall it with: pip install --force-reinstall "rocm[libraries]"'
        ) from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise RocmSdkError(
            f"{path}: written by a build of another rocm_sdk version (schema "
            f"{raw.get('schema') if isinstance(raw, dict) else None!r}, expected {SCHEMA}); "
            "reinstall the rocm package"
        )
    try:
        return _document(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RocmSdkError(
            f"{path}: malformed build information ({exc!r}); reinstall the rocm package"
        ) from None


def _document(raw: Dict[str, Any]) -> DistInfo:
    packages = {key: _package(key, item) for key, item in raw["packages"].items()}
    libraries = tuple(
        Library(
            name=str(item["name"]),
            package=str(item["package"]),
            linux=str(item.get("linux") or ""),
            windows=str(item.get("windows") or ""),
            optional=bool(item.get("optional", False)),
            built=bool(item.get("built", True)),
        )
        for item in raw.get("libraries", [])
    )
    scripts = {
        name: ConsoleScript(
            name=name,
            package=item["package"],
            path=item["path"],
            test_args=tuple(item.get("test_args", [])),
            needs_gpu=bool(item.get("needs_gpu", False)),
            needs_devel=bool(item.get("needs_devel", False)),
        )
        for name, item in raw.get("console_scripts", {}).items()
    }
    devel_raw = raw.get("devel")
    devel = None
    if devel_raw:
        devel = DevelLayout(
            package=devel_raw.get("package", "devel"),
            root=devel_raw.get("root", "root"),
            archive=devel_raw.get("archive", "devel.tar"),
            manifest=devel_raw.get("manifest", "devel-manifest.json"),
            bin_dir=devel_raw.get("bin_dir", "bin"),
            cmake_dir=devel_raw.get("cmake_dir", "lib/cmake"),
            cmake_config=devel_raw.get("cmake_config") or "",
        )
    family = raw["family"]
    fams = raw.get("target_families") or {}
    families = TargetFamilies(
        available=tuple(fams.get("available", [family])),
        default=fams.get("default", family),
        linux=tuple(fams.get("linux", [])),
        windows=tuple(fams.get("windows", [])),
        targets={
            name: tuple(targets)
            for name, targets in fams.get("targets", {family: raw.get("targets", [])}).items()
        },
    )
    return DistInfo(
        version=raw["version"],
        family=family,
        targets=tuple(raw.get("targets", [])),
        meta=raw.get("meta", "rocm"),
        nonce=raw.get("py_package_suffix_nonce", ""),
        families=families,
        packages=packages,
        libraries=libraries,
        console_scripts=scripts,
        devel=devel,
    )


def _package(key: str, item: Dict[str, Any]) -> Package:
    extra = item.get("extra")
    return Package(
        key=key,
        dist=item["dist"],
        module=item["module"],
        extra=extra,
        dist_template=item.get("dist_template", item["dist"]),
        module_template=item.get("module_template", item["module"]),
        required=bool(item.get("required", extra is None)),
        shipped=bool(item.get("shipped", True)),
    )
