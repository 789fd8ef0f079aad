"""The set of wheels a build writes: runtime, devel and meta, with their checks.

Checks made here, before any byte is compressed: every required package has files (an empty
per-family libraries wheel is an error, never a shipped wheel), no two co-installable wheels
install the same path, and within one family namespace (generic files plus the family's) a
filename appears once. A console script whose program is not in the tree (partial trees are
normal) is left out with a warning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelyard.build.assemble import RunpathResult, devel_entries
from wheelyard.build.devel import DEVEL_ROOT, write_devel_archive
from wheelyard.build.licenses import LicenseIndex, index_licenses, license_file_names
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
from wheelyard.profile import GENERIC, ConsoleScript, Family, PackageDef, Profile, glob_match
from wheelyard.wheelfile import FileEntry, WheelSpec, dist_info_name, wheel_filename

DEVEL_ARCHIVE = "devel.tar"
DEVEL_MANIFEST = "devel-manifest.json"


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


def _console_scripts(
    definition: PackageDef, files: Collection[str]
) -> list[tuple[ConsoleScript, str]]:
    """The package's console scripts whose program is in ``files``, with the path used."""
    found = []
    for script in definition.console_scripts:
        path = script.resolve(files)
        if path is not None:
            found.append((script, path))
    return found


def _install_hint(profile: Profile) -> str:
    return f'pip install "{profile.meta}[libraries,devel]" --pre --find-links=<index>/index.html'


def _expected_instances(
    profile: Profile,
    families: tuple[Family, ...],
    payloads: Mapping[PackageInstance, list[Payload]],
    on_warning: Callable[[str], None],
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
            shipped = {script.name for script, _ in _console_scripts(package, set(files))}
            for script in package.console_scripts:
                if script.name not in shipped:
                    on_warning(
                        f"console script left out: {script.name} ({instance.dist_name} has no "
                        f"{' or '.join(script.paths)})"
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
    on_warning: Callable[[str], None],
) -> list[PlannedWheel]:
    """Plan every wheel; ``on_dangling`` hears of dropped links, ``on_warning`` of the rest
    (console scripts left out)."""
    instances = _expected_instances(profile, plan.families, payloads, on_warning)
    licenses = index_licenses(profile, plan)
    wheels = [
        _runtime_wheel(profile, i, payloads[i], version, elf_facts, runpaths, licenses)
        for i in instances
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
            shipped = licenses.entries(
                dist_info_name(devel_instance.dist_name, version),
                (s.artifact for s in view.tree.values()),
            )
            wheels.append(
                _devel_wheel(
                    profile,
                    devel,
                    devel_instance,
                    mine,
                    version,
                    directory,
                    _tag(infos, profile),
                    shipped,
                )
            )
        wheels.append(
            _meta_wheel(profile, family, mine, devel_instance, payloads, version, licenses)
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
    licenses: tuple[FileEntry, ...],
    expression: str | None = None,
) -> bytes:
    return Metadata(
        name=name,
        version=version,
        summary=summary,
        description=describe(summary, version, family, _install_hint(profile)),
        requires_python=profile.requires_python,
        license=expression or profile.license,
        homepage=profile.homepage,
        requires=requires,
        license_files=license_file_names(dist_info_name(name, version), licenses),
    ).render()


def _runtime_wheel(
    profile: Profile,
    instance: PackageInstance,
    files: list[Payload],
    version: str,
    elf_facts: Mapping[Path, ElfInfo | None],
    runpaths: RunpathResult,
    licenses: LicenseIndex,
) -> PlannedWheel:
    module = instance.module
    definition = instance.definition
    entries = [FileEntry(arcname=f"{module}/__init__.py", data=package_init(instance.dist_name))]
    for item in files:
        source = runpaths.sources.get((instance.dist_name, item.path), item.staged.source)
        entries.append(
            FileEntry(arcname=f"{module}/{item.path}", source=source, executable=item.executable)
        )
    scripts = {s.name: path for s, path in _console_scripts(definition, {i.path for i in files})}
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
    shipped = licenses.entries(
        dist_info_name(instance.dist_name, version), (item.staged.artifact for item in files)
    )
    return PlannedWheel(
        dist_name=instance.dist_name,
        version=version,
        family=instance.family_name,
        kind="runtime",
        tag=_tag(infos, profile),
        entries=(*entries, *shipped),
        metadata=_metadata(
            profile,
            name=instance.dist_name,
            summary=definition.summary_for(family),
            family=family,
            version=version,
            requires=requires,
            licenses=shipped,
            expression=definition.license_expression,
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
    licenses: tuple[FileEntry, ...],
) -> PlannedWheel:
    assert instance.family is not None
    module = instance.module
    entries = (
        FileEntry(arcname=f"{module}/__init__.py", data=package_init(instance.dist_name)),
        FileEntry(arcname=f"{module}/{DEVEL_ARCHIVE}", source=directory / DEVEL_ARCHIVE),
        FileEntry(arcname=f"{module}/{DEVEL_MANIFEST}", source=directory / DEVEL_MANIFEST),
        *licenses,
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
            licenses=licenses,
            expression=definition.license_expression,
        ),
    )


def _meta_wheel(
    profile: Profile,
    family: Family,
    instances: list[PackageInstance],
    devel: PackageInstance | None,
    payloads: Mapping[PackageInstance, list[Payload]],
    version: str,
    licenses: LicenseIndex,
) -> PlannedWheel:
    own = licenses.entries(dist_info_name(profile.meta, version), ())
    shipped = instances + ([devel] if devel is not None else [])
    files = {i.definition.key: {item.path for item in payloads[i]} for i in instances}
    scripts = [
        (i.definition.key, script, path)
        for i in instances
        for script, path in _console_scripts(i.definition, files[i.definition.key])
    ]
    document = dist_info_document(
        profile=profile,
        version=version,
        family=family,
        shipped={i.definition.key for i in shipped},
        files=files,
        scripts=scripts,
        devel={
            "package": devel.definition.key if devel is not None else "devel",
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
        licenses=own,
    )
    return PlannedWheel(
        dist_name=profile.meta,
        version=version,
        family=family.name,
        kind="meta",
        tag="py3-none-any",
        entries=(*meta_runtime_entries(profile, document), *own),
        metadata=metadata,
        entry_points=render_entry_points(
            {profile.console_script: f"{profile.runtime_module}.__main__:main"}
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
