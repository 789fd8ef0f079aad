"""ROCm SDK for Python: find and preload the libraries of the installed ROCm wheels.

Frameworks built against the ROCm wheels call, at start-up::

    import rocm_sdk
    rocm_sdk.initialize_process()

which loads the core runtime libraries (``amdhip64`` by default) with ``RTLD_GLOBAL`` so that
extension modules linked against them resolve without ``LD_LIBRARY_PATH``.

This package runs on every Python the wheels support (3.9 and newer) and uses the standard
library only.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from rocm_sdk import _info

__all__ = [
    "__version__",
    "find_libraries",
    "initialize_process",
    "preload_libraries",
]

try:
    __version__: str = _info.load().version
except _info.RocmSdkError as _error:  # a damaged install: let `except ImportError` callers cope
    raise ImportError(str(_error)) from None

PRELOAD_ENV = "ROCM_SDK_PRELOAD_LIBRARIES"

_preloaded: Dict[str, Any] = {}
_preload_lock = threading.Lock()


def find_libraries(*shortnames: str) -> List[Path]:
    """Absolute paths of installed libraries, by short name (``"amdhip64"``, ``"rocblas"``).

    Raises ModuleNotFoundError for a name this release does not know, and for a library whose
    wheel is not installed (the message names the extra to install).
    """
    info = _info.load()
    paths = []
    for shortname in shortnames:
        library = info.libraries.get(shortname)
        if library is None:
            known = ", ".join(sorted(info.libraries)) or "(none)"
            raise ModuleNotFoundError(
                f"unknown ROCm library {shortname!r}: rocm {info.version} for {info.family} "
                f"provides: {known}"
            )
        package = info.packages[library.package]
        directory = _info.package_dir(package)
        if directory is None:
            raise ModuleNotFoundError(
                f"ROCm library {shortname!r} is provided by {package.dist}, which is not "
                f"installed; install it with: {info.install_hint(package)}",
                name=package.module,
            )
        path = directory.joinpath(*library.path.split("/"))
        if not path.is_file():
            raise ModuleNotFoundError(
                f"ROCm library {shortname!r}: {path} is missing although {package.dist} is "
                f'installed; repair it with: pip install --force-reinstall "{package.dist}'
                f'=={info.version}"',
                name=package.module,
            )
        paths.append(path)
    return paths


def preload_libraries(*shortnames: str, rtld_global: bool = True) -> None:
    """Load each library with ``ctypes.CDLL`` once per process (later calls are no-ops)."""
    import ctypes

    mode = ctypes.RTLD_GLOBAL if rtld_global else ctypes.RTLD_LOCAL
    with _preload_lock:
        for shortname in shortnames:
            if shortname in _preloaded:
                continue
            (path,) = find_libraries(shortname)
            try:
                _preloaded[shortname] = ctypes.CDLL(str(path), mode=mode)
            except OSError as exc:
                raise OSError(f"rocm_sdk: cannot load {shortname!r} from {path}: {exc}") from exc


def initialize_process(
    *,
    preload_shortnames: Optional[Iterable[str]] = None,
    rtld_global: bool = True,
    env_override: bool = True,
    check_version: Union[str, re.Pattern[str], None] = None,
    fail_on_version_mismatch: bool = False,
) -> None:
    """Prepare this process to use the ROCm libraries.

    Checks the version first (``check_version``: a string in which ``*`` matches anything, or a
    compiled regular expression; either must match the whole version). A mismatch warns, or
    raises RuntimeError when ``fail_on_version_mismatch``. Then preloads ``preload_shortnames``
    (default: the libraries this release lists) plus, when ``env_override``, the names in
    ``$ROCM_SDK_PRELOAD_LIBRARIES`` (separated by commas or semicolons).
    """
    if check_version is not None and not _version_matches(check_version, __version__):
        wanted = check_version if isinstance(check_version, str) else check_version.pattern
        message = f"rocm_sdk version {__version__} does not match the required {wanted!r}"
        if fail_on_version_mismatch:
            raise RuntimeError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    names = list(_info.load().preload if preload_shortnames is None else preload_shortnames)
    if env_override:
        names.extend(_split_names(os.environ.get(PRELOAD_ENV, "")))
    unique = list(dict.fromkeys(names))
    preload_libraries(*unique, rtld_global=rtld_global)


def _split_names(value: str) -> List[str]:
    return [name.strip() for name in re.split(r"[,;]", value) if name.strip()]


def _version_matches(wanted: Union[str, re.Pattern[str]], version: str) -> bool:
    if isinstance(wanted, str):
        pattern = ".*".join(re.escape(piece) for piece in wanted.split("*"))
        return re.fullmatch(pattern, version) is not None
    return wanted.fullmatch(version) is not None
