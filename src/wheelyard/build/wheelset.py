"""The set of wheels a build writes: runtime, devel and meta, with their checks.

Checks made here, before any byte is compressed: every required package has files (an empty
per-family libraries wheel is an error, never a shipped wheel), declared console scripts exist,
no two co-installable wheels install the same path, and within one family namespace (generic
files plus the family's) a filename appears once.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelyard.build.assemble import RunpathResult, devel_entries
from wheelyard.build.devel import DEVEL_ROOT, write_devel_archive
from wheelyard.build.links import Payload, TreeLinks
from wheelyard.build.meta import (
    Metadata,
    Requirement,
    describe,
    dist_info_document,
    meta_runtime_entries,
    package_init,
    render_console_module,
    render_entry_points,
    render_wheel_file,
)
from wheelyard.build.ownership import PackageInstance
from wheelyard.build.split import SplitPlan
from wheelyard.elf import ElfInfo, platform_tag
from wheelyard.errors import SplitError
from wheelyard.profile import GENERIC, Family, PackageDef, Profile, glob_match
from wheelyard.wheelfile import FileEntry, WheelSpec, dist_info_name, wheel_filename

DEVEL_ARCHIVE = "devel.tar"
DEVEL_MANIFEST = "devel-manifest.json"
_SHORT_NAME = re.compile(r"^lib(?P<short>.+?)\.so(\.[0-9.]+)?$")


@dataclass(frozen=True, kw_only=True)
class PlannedWheel:
    dist_name: str
    version: str
    family: str  # "generic" or a family name: where in dist/ the wheel goes
    kind: str  # runtime | devel | meta
    tag: str
    entries: tuple[FileEntry, ...]
    metadata: bytes
    entry_points: bytes | None = None

    @property
    def filename(self) -> str:
        return wheel_filename(self.dist_name, self.version, self.tag)

    def spec(self, dist: Path) -> WheelSpec:
        directory = dist if self.family == GENERIC else dist / self.family
        info = dist_info_name(self.dist_name, self.version)
        extra = [
            FileEntry(arcname=f"{info}/METADATA", data=self.metadata),
            FileEntry(arcname=f"{info}/WHEEL", data=render_wheel_file(self.tag)),
        ]
        if self.entry_points is not None:
            extra.append(FileEntry(arcname=f"{info}/entry_points.txt", data=self.entry_points))
        return WheelSpec(
            path=directory / self.filename, dist_info=info, entries=self.entries + tuple(extra)
        )


def _tag(infos: list[ElfInfo], profile: Profile) -> str:
    platform = platform_tag(infos, min_glibc=profile.min_glibc)
    return f"py3-none-{platform}" if platform else "py3-none-any"


def _short_name(path: str) -> str | None:
    match = _SHORT_NAME.match(posixpath.basename(path))
    return match.group("short") if match else None


def _install_hint(profile: Profile) -> str:
    return f'pip install "{profile.meta}[libraries,devel]" --pre --find-links=<index>/index.html'


def _expected_instances(
    profile: Profile,
    families: tuple[Family, ...],
    payloads: Mapping[PackageInstance, list[Payload]],
) -> list[PackageInstance]:
    problems = []
    present = []
    for package in profile.runtime_packages():
        scope: list[Family | None] = [None] if package.scope == "generic" else list(families)
        for family in scope:
            instance = PackageInstance(definition=package, family=family)
            files = [item.path for item in payloads.get(instance, [])]
            if not files:
                if not package.optional:
                    problems.append(f"{instance.dist_name}: no files at all")
                continue
            if family is not None and not any(
                item.staged.artifact.family == family.name for item in payloads[instance]
            ):
                problems.append(
                    f"{instance.dist_name}: nothing from {family.name} artifacts, "
                    "only generic files"
                )
            missing = [p for p in package.must_contain if not any(glob_match(p, f) for f in files)]
            if missing:
                problems.append(f"{instance.dist_name}: nothing matches {', '.join(missing)}")
            scripts = [s.path for s in package.console_scripts if s.path not in files]
            if scripts:
                problems.append(
                    f"{instance.dist_name}: console scripts point at missing {', '.join(scripts)}"
                )
            present.append(instance)
    if problems:
        raise SplitError(
            "packages that would ship empty or incomplete",
            problems,
            hint="check that --artifacts holds the artifacts of every family you build (a "
            "per-family libraries wheel without libraries is never written)",
        )
    return present


def plan_wheels(
    *,
    profile: Profile,
    plan: SplitPlan,
    version: str,
    payloads: Mapping[PackageInstance, list[Payload]],
    links: Mapping[str, TreeLinks],
    elf_facts: Mapping[Path, ElfInfo | None],
    runpaths: RunpathResult,
    workdir: Path,
    source_date_epoch: int,
    on_dangling: Callable[[str], None],
) -> list[PlannedWheel]:
    instances = _expected_instances(profile, plan.families, payloads)
    wheels = [
        _runtime_wheel(profile, i, payloads[i], version, elf_facts, runpaths) for i in instances
    ]
    for view in plan.views:
        family = view.family
        mine = [i for i in instances if i.family_name in (GENERIC, family.name)]
        devel = profile.devel_package()
        devel_instance = None
        if devel is not None:
            devel_instance = PackageInstance(definition=devel, family=family)
            entries = devel_entries(
                view,
                plan,
                links[family.name],
                {i: payloads[i] for i in mine},
                runpaths.sources,
                on_dangling=on_dangling,
            )
            directory = workdir / family.name
            directory.mkdir(parents=True, exist_ok=True)
            write_devel_archive(
                entries,
                tar_path=directory / DEVEL_ARCHIVE,
                manifest_path=directory / DEVEL_MANIFEST,
                source_date_epoch=source_date_epoch,
            )
            infos = [i for s in view.tree.values() if (i := elf_facts.get(s.source)) is not None]
            wheels.append(
                _devel_wheel(
                    profile, devel, devel_instance, mine, version, directory, _tag(infos, profile)
                )
            )
        wheels.append(
            _meta_wheel(profile, family, mine, devel_instance, payloads, elf_facts, version)
        )
    _check_collisions(wheels)
    return wheels


def _metadata(
    profile: Profile,
    *,
    name: str,
    summary: str,
    family: Family | None,
    version: str,
    requires: tuple[Requirement, ...],
) -> bytes:
    return Metadata(
        name=name,
        version=version,
        summary=summary,
        description=describe(summary, version, family, _install_hint(profile)),
        requires_python=profile.requires_python,
        license=profile.license,
        homepage=profile.homepage,
        requires=requires,
    ).render()


def _runtime_wheel(
    profile: Profile,
    instance: PackageInstance,
    files: list[Payload],
    version: str,
    elf_facts: Mapping[Path, ElfInfo | None],
    runpaths: RunpathResult,
) -> PlannedWheel:
    module = instance.module
    definition = instance.definition
    entries = [FileEntry(arcname=f"{module}/__init__.py", data=package_init(instance.dist_name))]
    for item in files:
        source = runpaths.sources.get((instance.dist_name, item.path), item.staged.source)
        entries.append(
            FileEntry(arcname=f"{module}/{item.path}", source=source, executable=item.executable)
        )
    scripts = {s.name: s.path for s in definition.console_scripts}
    entry_points = None
    if scripts:
        entries.append(
            FileEntry(
                arcname=f"{module}/_console.py",
                data=render_console_module(instance.dist_name, scripts),
            )
        )
        entry_points = render_entry_points({n: f"{module}._console:main" for n in scripts})
    infos = [i for item in files if (i := elf_facts.get(item.staged.source)) is not None]
    family = instance.family
    requires = tuple(
        Requirement(
            name=profile.package(key).dist_name(
                family if profile.package(key).scope == "family" else None
            ),
            version=version,
        )
        for key in definition.requires
    )
    return PlannedWheel(
        dist_name=instance.dist_name,
        version=version,
        family=instance.family_name,
        kind="runtime",
        tag=_tag(infos, profile),
        entries=tuple(entries),
        metadata=_metadata(
            profile,
            name=instance.dist_name,
            summary=definition.summary_for(family),
            family=family,
            version=version,
            requires=requires,
        ),
        entry_points=entry_points,
    )


def _devel_wheel(
    profile: Profile,
    definition: PackageDef,
    instance: PackageInstance,
    instances: list[PackageInstance],
    version: str,
    directory: Path,
    tag: str,
) -> PlannedWheel:
    assert instance.family is not None
    module = instance.module
    entries = (
        FileEntry(arcname=f"{module}/__init__.py", data=package_init(instance.dist_name)),
        FileEntry(arcname=f"{module}/{DEVEL_ARCHIVE}", source=directory / DEVEL_ARCHIVE),
        FileEntry(arcname=f"{module}/{DEVEL_MANIFEST}", source=directory / DEVEL_MANIFEST),
    )
    # The devel tree links into every runtime wheel of its family view, so it pins them all
    # (profile "requires" only adds to that), or `rocm-sdk init` would find links dangling.
    requires = tuple(
        sorted(
            (Requirement(name=i.dist_name, version=version) for i in instances),
            key=lambda r: r.name,
        )
    )
    return PlannedWheel(
        dist_name=instance.dist_name,
        version=version,
        family=instance.family.name,
        kind="devel",
        tag=tag,
        entries=entries,
        metadata=_metadata(
            profile,
            name=instance.dist_name,
            summary=definition.summary_for(instance.family),
            family=instance.family,
            version=version,
            requires=requires,
        ),
    )


def _meta_wheel(
    profile: Profile,
    family: Family,
    instances: list[PackageInstance],
    devel: PackageInstance | None,
    payloads: Mapping[PackageInstance, list[Payload]],
    elf_facts: Mapping[Path, ElfInfo | None],
    version: str,
) -> PlannedWheel:
    shipped = instances + ([devel] if devel is not None else [])
    packages = {
        i.definition.key: {"dist": i.dist_name, "module": i.module, "extra": i.definition.extra}
        for i in shipped
    }
    libraries: dict[str, dict[str, str]] = {}
    scripts: dict[str, dict[str, object]] = {}
    for instance in instances:
        for item in payloads[instance]:
            short = _short_name(item.path)
            info = elf_facts.get(item.staged.source)
            loadable = info is not None and info.elf_type == "ET_DYN" and not info.is_executable
            if short and loadable and short not in libraries:
                libraries[short] = {"package": instance.definition.key, "path": item.path}
        for script in instance.definition.console_scripts:
            scripts[script.name] = {
                "package": instance.definition.key,
                "path": script.path,
                "test_args": list(script.test_args),
            }
    document = dist_info_document(
        version=version,
        family=family,
        packages=packages,
        libraries=libraries,
        preload=profile.preload,
        console_scripts=scripts,
        devel={
            "root": DEVEL_ROOT,
            "archive": DEVEL_ARCHIVE,
            "manifest": DEVEL_MANIFEST,
            "bin_dir": profile.devel.bin_dir,
            "cmake_dir": profile.devel.cmake_dir,
            "cmake_config": profile.devel.cmake_config,
        },
    )
    requires = tuple(
        sorted(
            (
                Requirement(name=i.dist_name, version=version, extra=i.definition.extra)
                for i in shipped
            ),
            key=lambda r: (r.extra or "", r.name),
        )
    )
    metadata = _metadata(
        profile,
        name=profile.meta,
        summary=f"{profile.summary} ({family.name})",
        family=family,
        version=version,
        requires=requires,
    )
    return PlannedWheel(
        dist_name=profile.meta,
        version=version,
        family=family.name,
        kind="meta",
        tag="py3-none-any",
        entries=tuple(meta_runtime_entries(profile, document)),
        metadata=metadata,
        entry_points=render_entry_points(
            {profile.console_script: f"{profile.runtime_module}.cli:main"}
        ),
    )


def _check_collisions(wheels: list[PlannedWheel]) -> None:
    """No path installed by two distributions; no filename twice in a namespace."""
    owners: dict[str, set[str]] = defaultdict(set)
    for wheel in wheels:
        for entry in wheel.entries:
            owners[entry.arcname].add(wheel.dist_name)
    clashes = [
        f"{path}: {', '.join(sorted(d))}" for path, d in sorted(owners.items()) if len(d) > 1
    ]
    if clashes:
        raise SplitError(
            "paths installed by more than one distribution",
            clashes,
            hint="an uninstall of one would delete the other's file; give each "
            "package its own install_dir",
        )
    generic = [w.filename for w in wheels if w.family == GENERIC]
    for family in sorted({w.family for w in wheels} - {GENERIC}):
        names = generic + [w.filename for w in wheels if w.family == family]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SplitError(
                f"filenames repeated in the {family} namespace",
                repeated,
                hint="family-specific packages need {family} in their name",
            )
