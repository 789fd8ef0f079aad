"""Resolve every DT_NEEDED of the wheels' ELF files, plan their RUNPATHs, pick platform tags.

Pure functions on data: the caller reads the files (:func:`wheelyard.elf.read_elf`), applies the
plan (:func:`wheelyard.elf.set_runpath`) and writes the report.

Resolution order for each NEEDED name of a file in wheel W:

1. a library of W whose SONAME (its file name when it has none) is that name;
2. a library of a wheel W depends on, directly or not (the first such wheel by name);
3. the manylinux system allow-list (``system``, usually :data:`MANYLINUX_SYSTEM_LIBS`);
4. the profile's ``allow_external`` names: reported as external requirements;
5. otherwise missing, which :func:`check_closure` turns into a build error.

Only libraries of the same machine and word size count. RUNPATH entries are relative to
``$ORIGIN`` so they work wherever site-packages is. For a library in another wheel, a file gets
two entries: one valid in the merged tree (the devel tree, where every wheel's install directory is
laid over one root, e.g. ``$ORIGIN/../lib``) and one valid in site-packages
(``$ORIGIN/../../_rocm_sdk_core/lib``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from wheelyard.elf.read import ElfInfo
from wheelyard.errors import ClosureError, ElfError
from wheelyard.report import printable

# What a manylinux_2_28 system provides (auditwheel's policy for x86_64, PEP 600), plus the
# dynamic loader, which auditwheel treats as part of glibc.
MANYLINUX_SYSTEM_LIBS: frozenset[str] = frozenset({
    "ld-linux-x86-64.so.2",
    "libGL.so.1", "libICE.so.6", "libSM.so.6", "libX11.so.6", "libXext.so.6", "libXrender.so.1",
    "libanl.so.1", "libatomic.so.1", "libc.so.6", "libdl.so.2", "libexpat.so.1", "libgcc_s.so.1",
    "libglib-2.0.so.0", "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libm.so.6",
    "libmvec.so.1", "libnsl.so.1", "libpthread.so.0", "libresolv.so.2", "librt.so.1",
    "libstdc++.so.6", "libutil.so.1", "libz.so.1",
})  # fmt: skip

# Machines whose ELF files are GPU code objects, not host code: they never set a platform tag.
DEVICE_MACHINES: frozenset[str] = frozenset({"amdgpu"})

_ORIGIN_PREFIXES = ("$ORIGIN", "${ORIGIN}")


@dataclass(frozen=True, kw_only=True)
class ShippedElf:
    """An ELF file as it will be installed."""

    wheel: str  # distribution name, e.g. "rocm-sdk-libraries-gfx120X-all"
    install_dir: str  # the wheel's top directory, e.g. "_rocm_sdk_libraries_gfx120X_all"
    path: str  # posix path inside install_dir, e.g. "lib/librocblas.so.5"
    info: ElfInfo
    family: str | None = None  # the family whose wheel set holds it; None: generic (every set)
    origin: str = ""  # where it comes from, for messages: "core-hip_lib_generic/lib/x.so.7"


@dataclass(frozen=True, kw_only=True)
class FileClosure:
    """How one file's NEEDED entries resolve, and the RUNPATH it gets."""

    wheel: str
    path: str
    needed: tuple[
        tuple[str, str], ...
    ]  # (name, "wheel:<dist>" | "system" | "external" | "missing")
    runpath: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ClosureReport:
    """The closure of every file, sorted by (wheel, path)."""

    files: tuple[FileClosure, ...]
    missing: tuple[tuple[str, str, str], ...]  # (wheel, path, needed), sorted
    external: tuple[str, ...]  # allowed external names actually needed, sorted
    # needed name -> wheels that ship it but are no dependency of the wheel that needs it
    undeclared: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(("same_wheel", "dependency", "system", "external", "missing"), 0)
        for item in self.files:
            for _name, where in item.needed:
                if where == f"wheel:{item.wheel}":
                    counts["same_wheel"] += 1
                elif where.startswith("wheel:"):
                    counts["dependency"] += 1
                else:
                    counts[where] += 1
        needed = sum(len(item.needed) for item in self.files)
        return {"files": len(self.files), "needed": needed, **counts}

    def to_json(self) -> dict[str, Any]:
        """The content of ``build/closure-report.json``::

            {"schema": 1,
             "totals": {"files": 2, "needed": 5, "same_wheel": 1, "dependency": 1,
                        "system": 3, "external": 0, "missing": 0},
             "external": ["libdrm.so.2"],
             "missing": [{"wheel": "...", "path": "lib/x.so", "needed": "liby.so.1"}],
             "files": [{"wheel": "rocm-sdk-libraries-gfx120X-all",
                        "path": "lib/librocblas.so.5",
                        "needed": {"libamdhip64.so.7": "wheel:rocm-sdk-core",
                                   "libc.so.6": "system"},
                        "runpath": ["$ORIGIN", "$ORIGIN/../../_rocm_sdk_core/lib"]}]}

        ``needed`` keeps the file's DT_NEEDED order; ``runpath`` is the planned RUNPATH
        (empty: the file has none).
        """
        return {
            "schema": 1,
            "totals": self.totals,
            "external": list(self.external),
            "missing": [{"wheel": w, "path": p, "needed": n} for w, p, n in self.missing],
            "files": [
                {
                    "wheel": item.wheel,
                    "path": item.path,
                    "needed": dict(item.needed),
                    "runpath": list(item.runpath),
                }
                for item in self.files
            ],
        }


def check_closure(report: ClosureReport) -> None:
    """Raise :class:`ClosureError` listing every NEEDED that resolves nowhere."""
    if not report.missing:
        return
    elsewhere = dict(report.undeclared)
    lines = []
    for wheel, path, needed in report.missing:
        line = f"{wheel}/{path}: needs {needed}"
        if needed in elsewhere:
            line += f" (shipped by {', '.join(elsewhere[needed])}, not a dependency of {wheel})"
        lines.append(printable(line))
    raise ClosureError(lines)


def plan_runpaths(
    files: Sequence[ShippedElf],
    depends: Mapping[str, Sequence[str]],
    *,
    system: AbstractSet[str],
    allow_external: AbstractSet[str],
) -> tuple[dict[tuple[str, str], tuple[str, ...]], ClosureReport]:
    """Resolve every NEEDED and plan each file's RUNPATH, keyed by (wheel, path)."""
    ordered = sorted(files, key=lambda f: (f.wheel, f.path))
    providers: dict[tuple[str, str], list[ShippedElf]] = {}
    for item in ordered:
        if is_library(item.info):
            name = item.info.soname or posixpath.basename(item.path)
            providers.setdefault((item.wheel, name), []).append(item)
    wheels = sorted({item.wheel for item in ordered} | set(depends))
    closure = {wheel: _dependencies(wheel, depends) for wheel in wheels}

    plan: dict[tuple[str, str], tuple[str, ...]] = {}
    results: list[FileClosure] = []
    missing: list[tuple[str, str, str]] = []
    external: set[str] = set()
    undeclared: dict[str, set[str]] = {}
    for item in ordered:
        resolved: list[tuple[str, str]] = []
        targets: list[ShippedElf] = []
        for name in item.info.needed:
            target = _provider(item, name, providers, closure[item.wheel])
            if target is not None:
                targets.append(target)
                resolved.append((name, f"wheel:{target.wheel}"))
            elif name in system:
                resolved.append((name, "system"))
            elif name in allow_external:
                external.add(name)
                resolved.append((name, "external"))
            else:
                missing.append((item.wheel, item.path, name))
                resolved.append((name, "missing"))
                others = [w for w in wheels if (w, name) in providers and w != item.wheel]
                undeclared.setdefault(name, set()).update(others)
        runpath = _runpath(item, targets)
        plan[(item.wheel, item.path)] = runpath
        results.append(
            FileClosure(wheel=item.wheel, path=item.path, needed=tuple(resolved), runpath=runpath)
        )
    report = ClosureReport(
        files=tuple(results),
        missing=tuple(sorted(missing)),
        external=tuple(sorted(external)),
        undeclared=tuple(
            (name, tuple(sorted(ws))) for name, ws in sorted(undeclared.items()) if ws
        ),
    )
    return plan, report


def platform_tag(
    infos: Iterable[ElfInfo], *, min_glibc: tuple[int, int], wheel: str = "wheel"
) -> str | None:
    """``manylinux_2_N_<arch>`` for a wheel holding these ELF files; None if it holds none.

    N is the newest glibc any file needs, at least ``min_glibc``. GPU code objects
    (:data:`DEVICE_MACHINES`) do not count. A wheel mixing host machines is an error.
    """
    host = [info for info in infos if info.machine not in DEVICE_MACHINES]
    if not host:
        return None
    machines = sorted({info.machine for info in host})
    if len(machines) > 1:
        raise ElfError(
            wheel,
            f"holds ELF files for several machines: {', '.join(machines)}",
            hint="build one wheel per architecture",
        )
    glibc = max([min_glibc, *(info.glibc for info in host if info.glibc is not None)])
    return f"manylinux_{glibc[0]}_{glibc[1]}_{machines[0]}"


def is_library(info: ElfInfo) -> bool:
    # A PIE executable is ET_DYN too, but without a SONAME nothing can name it in DT_NEEDED.
    return info.elf_type == "ET_DYN" and (info.soname is not None or not info.is_executable)


def _dependencies(wheel: str, depends: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = list(depends.get(wheel, ()))
    while todo:
        dep = todo.pop()
        if dep not in seen and dep != wheel:
            seen.add(dep)
            todo.extend(depends.get(dep, ()))
    return tuple(sorted(seen))


def _provider(
    item: ShippedElf,
    name: str,
    providers: Mapping[tuple[str, str], list[ShippedElf]],
    dependencies: Sequence[str],
) -> ShippedElf | None:
    here = posixpath.dirname(item.path)
    for wheel in (item.wheel, *dependencies):
        fits = [
            p
            for p in providers.get((wheel, name), ())
            if (p.info.machine, p.info.bits) == (item.info.machine, item.info.bits)
        ]
        if fits:
            # Several copies in one wheel: the one beside the file, else the first by path.
            return next((p for p in fits if posixpath.dirname(p.path) == here), fits[0])
    return None


def _relative(start: str, target: str) -> str:
    rel = posixpath.relpath(target or ".", start or ".")
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


def _runpath(item: ShippedElf, targets: Sequence[ShippedElf]) -> tuple[str, ...]:
    if _existing_suffices(item, targets):
        return item.info.runpath or item.info.rpath
    here = posixpath.dirname(item.path)
    merged = sorted({posixpath.dirname(t.path) for t in targets})
    entries = [_relative(here, d) for d in merged]
    origin = posixpath.join(item.install_dir, here)
    installed = sorted(
        {(t.install_dir, posixpath.dirname(t.path)) for t in targets if t.wheel != item.wheel}
    )
    entries += [_relative(origin, posixpath.join(top, d)) for top, d in installed]
    return tuple(dict.fromkeys(entries))


def _existing_suffices(item: ShippedElf, targets: Sequence[ShippedElf]) -> bool:
    """Whether the file's own ``$ORIGIN`` entries find every library, in both layouts."""
    existing = item.info.runpath or item.info.rpath
    if not existing:
        return False
    here = posixpath.dirname(item.path)
    in_site: set[str] = set()  # directories relative to site-packages
    in_tree: set[str] = set()  # directories relative to the merged tree's root
    for entry in existing:
        head, _, rest = entry.partition("/")
        if head not in _ORIGIN_PREFIXES:
            return False
        site = posixpath.normpath(posixpath.join(item.install_dir, here, rest))
        if site == ".." or site.startswith("../"):
            return False  # leaves site-packages
        in_site.add(site)
        in_tree.add(posixpath.normpath(posixpath.join(here, rest)))
    for target in targets:
        folder = posixpath.dirname(target.path)
        if posixpath.normpath(folder) not in in_tree:
            return False
        if posixpath.normpath(posixpath.join(target.install_dir, folder)) not in in_site:
            return False
    return True
