"""Distribution information under the names TheRock's ``rocm_sdk._dist_info`` uses.

Filled from ``_dist_info.json`` (written by the build from the profile): the packages of the
distribution, the library table (short name -> package and file globs), the version, the GPU
target families and the helpers that turn them into requirements. Environment:

- ``ROCM_SDK_TARGET_FAMILY``: the target family to use (must be one this distribution has);
- ``ROCM_SDK_VERBOSE=1``: explain on stderr why target family discovery failed (silent otherwise,
  because framework start-up output must stay clean).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from rocm_sdk import _info

TARGET_FAMILY_ENV = "ROCM_SDK_TARGET_FAMILY"
VERBOSE_ENV = "ROCM_SDK_VERBOSE"
_VERBOSE = os.getenv(VERBOSE_ENV, "0") == "1"
_FAMILY_SUFFIXES = ("-all", "-dgpu", "-igpu", "-dcgpu")
_DISCOVERY_TIMEOUT = 60

try:
    _INFO = _info.load()
except _info.RocmSdkError as _error:  # a damaged install: let `except ImportError` callers cope
    raise ImportError(str(_error)) from None

# The version of every package of the distribution.
__version__: str = _INFO.version
# Appended to the platform module names; empty for this distribution's modules.
PY_PACKAGE_SUFFIX_NONCE: str = _INFO.nonce
# The family used when none is requested and none is discovered.
DEFAULT_TARGET_FAMILY: str = _INFO.families.default
# The families this distribution has packages for.
AVAILABLE_TARGET_FAMILIES: List[str] = list(_INFO.families.available)
# Per-platform family lists; a family in only one of them gets a sys_platform marker.
LINUX_TARGET_FAMILIES: List[str] = list(_INFO.families.linux)
WINDOWS_TARGET_FAMILIES: List[str] = list(_INFO.families.windows)
CACHED_TARGET_FAMILY: Optional[str] = None

ALL_PACKAGES: Dict[str, PackageEntry] = {}
ALL_LIBRARIES: Dict[str, LibraryEntry] = {}


def _base_family(target_family: str) -> str:
    """``gfx942:xnack+`` -> ``gfx942``: feature suffixes are not part of package names."""
    return target_family.split(":")[0]


def _identifier(target_family: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", _base_family(target_family))


class PackageEntry:
    """A distribution package of the SDK; registers itself in ``ALL_PACKAGES``.

    ``dist_package_template`` holds ``{target_family}`` when the package exists per family.
    ``module_template`` (ours) is the installed top-level module, with ``{target_family}`` or
    ``{target_family_ident}``; without it the module is ``_`` + the dist name with ``-`` as
    ``_``, plus the nonce, as in TheRock.
    """

    def __init__(
        self,
        logical_name: str,
        dist_package_template: str,
        *,
        pure_py_package_name: str,
        template_directory: str,
        required: bool = False,
        module_template: Optional[str] = None,
        extra: Optional[str] = None,
    ) -> None:
        if logical_name in ALL_PACKAGES:
            raise ValueError(f"package {logical_name!r} is defined twice")
        self.logical_name = logical_name
        self.dist_package_template = dist_package_template
        self.pure_py_package_name = pure_py_package_name
        self.template_directory = template_directory
        self.required = required
        self.module_template = module_template
        self.extra = extra
        ALL_PACKAGES[logical_name] = self

    @property
    def is_target_specific(self) -> bool:
        return "{target_family}" in self.dist_package_template

    def _fill(self, template: str, target_family: Optional[str]) -> str:
        if target_family is None:
            if "{target_family" in template:
                raise ValueError(
                    f"package {self.logical_name!r} exists per target family; name one"
                )
            return template
        return template.replace("{target_family_ident}", _identifier(target_family)).replace(
            "{target_family}", _base_family(target_family)
        )

    def get_dist_package_name(self, target_family: Optional[str] = None) -> str:
        if self.is_target_specific and target_family is None:
            raise ValueError(f"package {self.logical_name!r} exists per target family; name one")
        if not self.is_target_specific:
            return self.dist_package_template
        return self._fill(self.dist_package_template, target_family)

    def get_dist_package_require(self, target_family: Optional[str] = None) -> str:
        return f"{self.get_dist_package_name(target_family)}=={__version__}"

    def get_py_package_name(self, target_family: Optional[str] = None) -> str:
        if self.module_template is None:
            dist = self.get_dist_package_name(target_family)
            return "_" + dist.replace("-", "_") + PY_PACKAGE_SUFFIX_NONCE
        if self.is_target_specific and target_family is None:
            raise ValueError(f"package {self.logical_name!r} exists per target family; name one")
        family = target_family if self.is_target_specific else None
        return self._fill(self.module_template, family) + PY_PACKAGE_SUFFIX_NONCE

    def get_py_package(self, target_family: Optional[str] = None) -> Any:
        """The module spec of the installed platform module, or None."""
        name = self.get_py_package_name(target_family)
        try:
            return importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None

    def has_py_package(self, target_family: Optional[str] = None) -> bool:
        return self.get_py_package(target_family) is not None

    def __repr__(self) -> str:
        return self.dist_package_template


class LibraryEntry:
    """A public library found by short name; registers itself in ``ALL_LIBRARIES``.

    ``so_pattern``/``dll_pattern`` are file globs in ``posix_relpath``/``windows_relpath`` of
    the package's install directory; an empty ``dll_pattern`` means "not on Windows". An
    ``optional`` library may be missing from a build; ``find_libraries`` then skips it.
    """

    def __init__(
        self,
        shortname: str,
        package_name: str,
        so_pattern: str,
        dll_pattern: str,
        posix_relpath: str = "lib",
        optional: bool = False,
        *,
        windows_relpath: str = "bin",
        built: bool = True,
    ) -> None:
        if shortname in ALL_LIBRARIES:
            raise ValueError(f"library {shortname!r} is defined twice")
        self.shortname = shortname
        self.package = ALL_PACKAGES[package_name]
        self.so_pattern = so_pattern
        self.dll_pattern = dll_pattern
        self.posix_relpath = posix_relpath
        self.windows_relpath = windows_relpath
        self.optional = optional
        self.built = built  # ours: the build found it (False: find_libraries will not)
        ALL_LIBRARIES[shortname] = self

    def __repr__(self) -> str:
        return (
            f"{self.shortname}(package={self.package!r}, so_pattern={self.so_pattern!r}, "
            f"dll_pattern={self.dll_pattern!r})"
        )


def _split_glob(glob: str, default_dir: str) -> Tuple[str, str]:
    if not glob:
        return default_dir, ""
    directory, _, name = glob.rpartition("/")
    return directory or ".", name


def _register() -> None:
    PackageEntry(
        "meta",
        _INFO.meta,
        pure_py_package_name=__name__.split(".")[0],
        template_directory=_INFO.meta,
        required=True,
    )
    for key in sorted(_INFO.packages):
        package = _INFO.packages[key]
        dist_stem = package.dist_template.replace("-{target_family}", "")
        PackageEntry(
            key,
            package.dist_template,
            pure_py_package_name=dist_stem.replace("-", "_"),
            template_directory=dist_stem,
            required=package.required,
            module_template=package.module_template,
            extra=package.extra,
        )
    for library in _INFO.libraries:
        posix_dir, so_pattern = _split_glob(library.linux, "lib")
        windows_dir, dll_pattern = _split_glob(library.windows, "bin")
        LibraryEntry(
            library.name,
            library.package,
            so_pattern,
            dll_pattern,
            posix_dir,
            library.optional,
            windows_relpath=windows_dir,
            built=library.built,
        )


_register()


def _log(message: str) -> None:
    if _VERBOSE:
        print(f"[rocm_sdk] {message}", file=sys.stderr)


def family_for_archs(archs: List[str]) -> Optional[str]:
    """The first available family covering one of ``archs`` (``gfx1201``, ``gfx942:xnack+``)."""
    for arch in sorted(set(archs)):
        base = _base_family(arch)
        candidates = [base[:-1] + "X" + suffix for suffix in _FAMILY_SUFFIXES] + [arch, base]
        for candidate in candidates:
            if candidate in AVAILABLE_TARGET_FAMILIES:
                return candidate
        for family in AVAILABLE_TARGET_FAMILIES:
            if base in _INFO.families.targets.get(family, ()):
                return family
    return None


def discover_current_target_family() -> Optional[str]:
    """The family of this machine's GPU as ``offload-arch`` reports it, or None."""
    import subprocess
    import sysconfig

    env = dict(os.environ)
    env["PATH"] = sysconfig.get_path("scripts") + os.pathsep + env.get("PATH", "")
    try:
        done = subprocess.run(
            ["offload-arch"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=_DISCOVERY_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _log(f"offload-arch could not run: {exc}")
        return None
    if done.returncode != 0:
        _log(f"offload-arch failed with exit code {done.returncode}: {done.stdout.strip()}")
        return None
    family = family_for_archs(done.stdout.split())
    if family is None:
        _log(f"offload-arch reported {done.stdout.split()}; no available family covers them")
    return family


def determine_target_family() -> str:
    """``$ROCM_SDK_TARGET_FAMILY``, else the discovered family, else ``DEFAULT_TARGET_FAMILY``.

    Cached for the process. ValueError if the family is not one of AVAILABLE_TARGET_FAMILIES.
    Discovery runs only when it could change the answer (more than one family available).
    """
    global CACHED_TARGET_FAMILY
    if CACHED_TARGET_FAMILY is not None:
        return CACHED_TARGET_FAMILY
    family = os.getenv(TARGET_FAMILY_ENV)
    source = f"{TARGET_FAMILY_ENV}={family}"
    if family is None:
        discovered = None
        if set(AVAILABLE_TARGET_FAMILIES) - {DEFAULT_TARGET_FAMILY}:
            discovered = discover_current_target_family()
        family = discovered or DEFAULT_TARGET_FAMILY
        source = "discovered" if discovered else "default"
    if family not in AVAILABLE_TARGET_FAMILIES:
        raise ValueError(
            f"target family {family!r} ({source}) is not available in this ROCm distribution "
            f"(available: {', '.join(AVAILABLE_TARGET_FAMILIES) or 'none'})"
        )
    CACHED_TARGET_FAMILY = family
    return family


def get_target_family_platform_marker(target_family: str) -> str:
    """A PEP 508 ``sys_platform`` marker for a family published for one platform only, else ""."""
    if not LINUX_TARGET_FAMILIES or not WINDOWS_TARGET_FAMILIES:
        return ""
    base = _base_family(target_family)
    on_linux = base in {_base_family(f) for f in LINUX_TARGET_FAMILIES}
    on_windows = base in {_base_family(f) for f in WINDOWS_TARGET_FAMILIES}
    if on_linux and not on_windows:
        return 'sys_platform == "linux"'
    if on_windows and not on_linux:
        return 'sys_platform == "win32"'
    return ""


def build_per_target_extras() -> Dict[str, List[str]]:
    """``<package>-<family>`` and ``<package>-all`` extras of the per-family optional packages.

    Empty when the distribution has one family (the plain extras then suffice).
    """
    families = sorted({_base_family(f) for f in AVAILABLE_TARGET_FAMILIES})
    extras: Dict[str, List[str]] = {}
    if len(families) <= 1:
        return extras
    for package in ALL_PACKAGES.values():
        if package.required or not package.is_target_specific:
            continue
        every = []
        for family in families:
            requirement = package.get_dist_package_require(family)
            marker = get_target_family_platform_marker(family)
            if marker:
                requirement = f"{requirement}; {marker}"
            extras[f"{package.logical_name}-{family}"] = [requirement]
            every.append(requirement)
        extras[f"{package.logical_name}-all"] = every
    return extras


def build_install_requires(target_family: str) -> List[str]:
    """The requirements of the meta package for ``target_family`` (required packages only)."""
    return [
        package.get_dist_package_require(target_family)
        for package in ALL_PACKAGES.values()
        if package.required and package.logical_name != "meta"
    ]
