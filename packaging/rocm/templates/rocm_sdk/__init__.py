"""ROCm SDK for Python: find and preload the libraries of the installed ROCm wheels.

Frameworks built against the ROCm wheels call, at start-up::

    import rocm_sdk
    rocm_sdk.initialize_process(preload_shortnames=["amdhip64", "hipblas"],
                                check_version="7.10.*")

which loads the named libraries with ``RTLD_GLOBAL`` so that extension modules linked against
them resolve without ``LD_LIBRARY_PATH``. The names, arguments and behaviour are those of
TheRock's ``rocm_sdk`` (see docs/runtime.md of wheelyard).

This package runs on every Python the wheels support (3.9 and newer) and uses the standard
library only.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from rocm_sdk import _dist_info, _info
from rocm_sdk._dist_info import __version__

__all__ = [
    "__version__",
    "find_libraries",
    "initialize_process",
    "preload_libraries",
]

PRELOAD_ENV = "ROCM_SDK_PRELOAD_LIBRARIES"

# Short name -> ctypes.CDLL of every library preloaded by this process.
_ALL_CDLLS: Dict[str, Any] = {}
_preload_lock = threading.RLock()


def _is_windows() -> bool:
    return os.name == "nt"


def find_libraries(*shortnames: str) -> List[Path]:
    """Absolute paths of installed libraries, by short name (``"amdhip64"``, ``"miopen"``).

    The short names are those of ``_dist_info.ALL_LIBRARIES``. Raises ModuleNotFoundError for a
    name the distribution does not know and, after looking at every name, for libraries whose
    wheel is not installed (naming the extras to install); FileNotFoundError when the wheel is
    installed but holds no matching file. Optional libraries that are absent, and libraries
    not shipped on this platform, are left out of the result.
    """
    windows = _is_windows()
    paths = []
    missing: Dict[str, str] = {}
    info = _info.load()
    for shortname in shortnames:
        entry = _dist_info.ALL_LIBRARIES.get(shortname)
        if entry is None:
            known = ", ".join(sorted(_dist_info.ALL_LIBRARIES)) or "none"
            raise ModuleNotFoundError(
                f"Unknown rocm library {shortname!r} (rocm {__version__} knows: {known})"
            )
        pattern = entry.dll_pattern if windows else entry.so_pattern
        if not pattern:
            continue  # not shipped on this platform
        package = entry.package
        family = _dist_info.determine_target_family() if package.is_target_specific else None
        module = package.get_py_package_name(family)
        directory = _info.module_dir(module)
        if directory is None:
            missing[package.logical_name] = package.extra or package.logical_name
            continue
        relpath = entry.windows_relpath if windows else entry.posix_relpath
        folder = directory.joinpath(*relpath.split("/"))
        matches = sorted(folder.glob(pattern))
        if not matches:
            if entry.optional:
                continue
            raise FileNotFoundError(_not_found(shortname, entry, folder, pattern, info))
        paths.append(matches[0])
    if missing:
        extras = ",".join(sorted(set(missing.values())))
        raise ModuleNotFoundError(
            f"the rocm packages {', '.join(sorted(missing))} providing the requested libraries "
            f'are not installed; install them with: pip install "{info.meta}[{extras}]'
            f'=={__version__}"'
        )
    return paths


def _not_found(shortname: str, entry: Any, folder: Path, pattern: str, info: Any) -> str:
    message = f"Could not find rocm library {shortname!r}: nothing matches {pattern!r} in {folder}"
    if not entry.built:
        return message + f" (this rocm {__version__} build does not include it)"
    package = info.packages.get(entry.package.logical_name)
    dist = package.dist if package is not None else entry.package.logical_name
    return (
        message + f"; the installed {dist} is damaged, repair it with: "
        f'pip install --force-reinstall "{dist}=={__version__}"'
    )


def preload_libraries(*shortnames: str, rtld_global: bool = True) -> None:
    """``ctypes.CDLL`` each library once per process, kept in ``_ALL_CDLLS``.

    Libraries skipped by ``find_libraries`` (optional and absent, or not on this platform) are
    skipped here too.
    """
    import ctypes

    mode = ctypes.RTLD_GLOBAL if rtld_global is True else ctypes.RTLD_LOCAL
    with _preload_lock:
        for shortname in shortnames:
            if shortname in _ALL_CDLLS:
                continue
            paths = find_libraries(shortname)
            if not paths:
                continue
            _ALL_CDLLS[shortname] = ctypes.CDLL(str(paths[0]), mode=mode)


def initialize_process(
    *,
    preload_shortnames: Optional[Sequence[str]] = None,
    rtld_global: bool = True,
    env_override: bool = True,
    check_version: Union[str, re.Pattern[str], None] = None,
    fail_on_version_mismatch: bool = False,
    **kwargs: Any,
) -> None:
    """Prepare this process to use the ROCm libraries (TheRock's semantics).

    1. Preload ``preload_shortnames`` (nothing by default).
    2. With ``env_override``, also preload the names in ``$ROCM_SDK_PRELOAD_LIBRARIES``
       (separated by ``,`` or ``;``); any failure there is a RuntimeError naming the variable.
    3. With ``check_version``, compare ``__version__``: a string must match the whole version,
       ``*`` matching any characters; a compiled pattern is applied with ``re.match``. A
       mismatch warns (UserWarning), or raises RuntimeError with ``fail_on_version_mismatch``.

    Other keyword arguments are accepted and ignored, for callers written for newer versions.
    """
    if preload_shortnames:
        preload_libraries(*preload_shortnames, rtld_global=rtld_global)
    if env_override:
        value = os.getenv(PRELOAD_ENV)
        names = _split_names(value) if value is not None else []
        if names:
            try:
                preload_libraries(*names, rtld_global=rtld_global)
            except Exception as exc:
                raise RuntimeError(
                    f"Could not preload the libraries named by the environment variable "
                    f"{PRELOAD_ENV}={value!r} ({type(exc).__name__}: {exc}); correct it, or "
                    "unset it if it is not needed."
                ) from exc
    if check_version:
        _check_version(check_version, fail=fail_on_version_mismatch)


def _split_names(value: str) -> List[str]:
    return [name.strip() for name in re.split(r"[,;]", value) if name.strip()]


def _check_version(wanted: Union[str, re.Pattern[str]], *, fail: bool) -> None:
    if isinstance(wanted, str):
        shown = wanted
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in wanted.split("*")) + "$")
    else:
        shown = wanted.pattern
        pattern = wanted
    if re.match(pattern, __version__):
        return
    message = (
        f"The program was compiled against a ROCm version matching {shown!r}, but the ROCm "
        f"installed in this Python environment is version {__version__}."
    )
    if fail:
        raise RuntimeError(message)
    warnings.warn(
        message + " Expect crashes or wrong results; install the matching rocm version.",
        UserWarning,
        stacklevel=3,
    )
