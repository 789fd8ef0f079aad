"""Deflate backends (zlib, libdeflate, ISA-L) and the ``--compression`` presets that pick one.

Every backend compresses one piece of an entry into raw deflate that joins with its
neighbours into one standard stream (see :mod:`wheelyard.wheelfile.deflate`): a piece that is
not the last ends on a byte boundary without the final-block bit, the last one ends the
stream. zlib and ISA-L do that with a preset dictionary (the 32 KiB before the piece) and
``Z_SYNC_FLUSH``; libdeflate has neither, so its pieces start cold and are made joinable
afterwards (:mod:`wheelyard.wheelfile.finalblock`).

The bytes depend on the backend, its version and the level, never on threads: the version
(:attr:`DeflateBackend.version`) goes into ``build-manifest.json``.

Presets, chosen on the measurements in ``docs/benchmarks.md`` (speed per core in 1 MiB pieces
and size against zlib 6, on a real 1.31 GB GPU fat binary):

========  ==============  ====================================================================
preset    backend, level  why
========  ==============  ====================================================================
fast      ISA-L 1         15x zlib 6's speed; a quarter larger
default   libdeflate 6    2.2x zlib 6's speed, joins included; 1.4% smaller, text no larger
small     libdeflate 9    3.3% smaller than zlib 6, at three quarters of its speed
zlib      zlib 6          the bytes wheelyard wrote before presets existed
========  ==============  ====================================================================

A preset whose backend package is missing falls back to zlib (1, 6 or 9) with a warning.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any, Final, Protocol

from wheelyard.errors import UsageError
from wheelyard.wheelfile import finalblock
from wheelyard.wheelfile.deflate import deflate_piece

Importer = Callable[[str], ModuleType]


class DeflateBackend(Protocol):
    """Compresses pieces into raw deflate that joins into one stream."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """What the compressed bytes depend on besides the input and the level."""
        ...

    @property
    def max_level(self) -> int: ...

    @property
    def uses_history(self) -> bool:
        """Whether :meth:`deflate` wants the 32 KiB before the piece as ``history``."""
        ...

    def deflate(
        self, data: bytes | memoryview, *, history: bytes, level: int, final: bool
    ) -> bytes | bytearray:
        """One piece: ending the stream when ``final``, else on a byte, without BFINAL."""
        ...


@dataclass(frozen=True)
class ZlibBackend:
    name: str = "zlib"
    version: str = zlib.ZLIB_RUNTIME_VERSION
    max_level: int = 9
    uses_history: bool = True

    def deflate(
        self, data: bytes | memoryview, *, history: bytes, level: int, final: bool
    ) -> bytes | bytearray:
        return deflate_piece(data, history=history, level=level, final=final)


@dataclass(frozen=True)
class IsalBackend:
    module: Any  # isal.isal_zlib
    version: str
    name: str = "isal"
    max_level: int = 3
    uses_history: bool = True

    def deflate(
        self, data: bytes | memoryview, *, history: bytes, level: int, final: bool
    ) -> bytes | bytearray:
        isal_zlib = self.module
        extra = (8, isal_zlib.Z_DEFAULT_STRATEGY, history) if history else ()
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, *extra)
        head: bytes = compressor.compress(data)
        tail: bytes = compressor.flush(isal_zlib.Z_FINISH if final else isal_zlib.Z_SYNC_FLUSH)
        return head + tail


@dataclass(frozen=True)
class LibdeflateBackend:
    module: Any  # the ``deflate`` package
    version: str
    name: str = "libdeflate"
    max_level: int = 12
    uses_history: bool = False

    def deflate(
        self, data: bytes | memoryview, *, history: bytes, level: int, final: bool
    ) -> bytes | bytearray:
        stream: bytearray = self.module.deflate_compress(data, level)
        return stream if final else finalblock.unfinish(stream, len(data))


def _zlib(_importer: Importer) -> DeflateBackend:
    return ZlibBackend()


def _isal(importer: Importer) -> DeflateBackend:
    package = importer("isal")
    version = f"isal {package.__version__} (ISA-L {package.ISAL_VERSION})"
    return IsalBackend(module=importer("isal.isal_zlib"), version=version)


def _libdeflate(importer: Importer) -> DeflateBackend:
    package = importer("deflate")
    finalblock.available()  # joining its pieces needs the C zlib: OSError if missing
    return LibdeflateBackend(module=package, version=f"deflate {package.__version__}")


BACKENDS: Final[Mapping[str, Callable[[Importer], DeflateBackend]]] = MappingProxyType(
    {"isal": _isal, "libdeflate": _libdeflate, "zlib": _zlib}
)
"""Loaders by backend name; a loader raises ``ImportError`` or ``OSError`` when unavailable."""

NOMINAL_MAX_LEVEL: Final[Mapping[str, int]] = MappingProxyType(
    {"isal": 3, "libdeflate": 12, "zlib": 9}
)


@dataclass(frozen=True, kw_only=True)
class Preset:
    backend: str
    level: int
    fallback_level: int  # zlib's, when ``backend`` is missing


PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {
        "fast": Preset(backend="isal", level=1, fallback_level=1),
        "default": Preset(backend="libdeflate", level=6, fallback_level=6),
        "small": Preset(backend="libdeflate", level=9, fallback_level=9),
        "zlib": Preset(backend="zlib", level=6, fallback_level=6),
    }
)
DEFAULT_PRESET: Final = "default"


@dataclass(frozen=True, kw_only=True)
class Compression:
    """What the writer uses: a loaded backend and a level (0 stores)."""

    preset: str
    backend: DeflateBackend
    level: int

    def describe(self) -> dict[str, object]:
        """For ``build-manifest.json``."""
        return {
            "preset": self.preset,
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "level": self.level,
        }


def load_backend(name: str, *, importer: Importer = importlib.import_module) -> DeflateBackend:
    """The backend called ``name``; ``ImportError`` or ``OSError`` if it cannot be used."""
    return BACKENDS[name](importer)


def choose_compression(
    preset: str = DEFAULT_PRESET,
    level: int | None = None,
    *,
    warn: Callable[[str], None],
    importer: Importer = importlib.import_module,
) -> Compression:
    """The backend and level for ``--compression PRESET [--compression-level N]``.

    ``level`` (default: the preset's) is a level of the preset's backend. If that backend
    cannot be loaded, zlib takes over (at the preset's zlib level, or ``level`` up to 9) and
    ``warn`` is told why.
    """
    if preset not in PRESETS:
        choices = ", ".join(PRESETS)
        raise UsageError("--compression", f"unknown preset {preset!r}; choose one of {choices}")
    chosen = PRESETS[preset]
    top = NOMINAL_MAX_LEVEL[chosen.backend]
    if level is not None and not 0 <= level <= top:
        raise UsageError(
            "--compression-level",
            f"must be 0..{top} for --compression {preset} ({chosen.backend}), not {level}",
        )
    try:
        backend = load_backend(chosen.backend, importer=importer)
    except (ImportError, OSError) as exc:
        fallback = chosen.fallback_level if level is None else min(level, 9)
        warn(
            f"compression backend {chosen.backend} is not available ({exc}); using zlib level "
            f"{fallback} instead (pip install {_PACKAGES[chosen.backend]} to get it back)"
        )
        return Compression(preset=preset, backend=ZlibBackend(), level=fallback)
    return Compression(
        preset=preset, backend=backend, level=chosen.level if level is None else level
    )


_PACKAGES: Final = {"isal": "isal", "libdeflate": "deflate", "zlib": "-"}
