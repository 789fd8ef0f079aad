"""``wheelyard index``: check a dist directory, plan its index pages, and write them.

Plan, then apply: :func:`plan_index` reads the dist (and any index being merged), runs every
check and renders every page in memory; :func:`write_index` first checks every path it will
write or delete (all under ``--dist``, see ``confine``), then writes files one by one, each
to a temporary name renamed into place, in an order where nothing links to a file not yet
written: merged-in wheels, ``.metadata`` sidecars, simple pages, the landing page, and the flat
``<family>/index.html`` pages last. Stale project pages are deleted at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from wheelyard.errors import IndexError_, format_list
from wheelyard.index.apply import import_file, remove_stale, replace_atomically
from wheelyard.index.confine import (
    KnownFamilies,
    check_family,
    check_targets,
    plan_stale_pages,
)
from wheelyard.index.fetch import Fetch, http_fetch
from wheelyard.index.merge import (
    ExistingIndex,
    MergedNamespace,
    merge_namespaces,
    read_existing_index,
)
from wheelyard.index.render import (
    IndexFile,
    LandingInfo,
    Namespace,
    Page,
    flat_page_path,
    namespaces_from,
    plan_pages,
    version_key,
)
from wheelyard.index.source import (
    GENERIC,
    MANIFEST_NAME,
    BuildManifest,
    LocalWheel,
    WheelMetadata,
    read_build_manifest,
    read_wheel_metadata,
    scan_dist,
)
from wheelyard.profile import FamilyRegistry
from wheelyard.wheelfile import hash_file

DEFAULT_META_PROJECTS = ("rocm",)


@dataclass(frozen=True, kw_only=True)
class NamespaceSummary:
    name: str
    projects: int
    files: int
    kept: int
    """Files listed only by the indexes merged from."""
    size: int
    flat_page: str


@dataclass(frozen=True, kw_only=True)
class IndexPlan:
    dist: Path
    imports: tuple[tuple[Path, str], ...]
    """(source file, dist-relative destination) of files carried over from a merged directory."""
    sidecars: tuple[Page, ...] = field(repr=False)
    pages: tuple[Page, ...] = field(repr=False)
    namespaces: tuple[NamespaceSummary, ...]
    stale: tuple[str, ...] = ()
    """Dist-relative pages of projects no longer listed, deleted after the writes."""
    stale_dirs: tuple[str, ...] = ()
    """Their project directories, removed when left empty."""

    def targets(self) -> tuple[list[str], list[str], list[str]]:
        """(files written, files deleted, directories removed), relative to ``dist``."""
        writes = [location for _source, location in self.imports]
        writes += [page.path for page in (*self.sidecars, *self.pages)]
        return writes, list(self.stale), list(self.stale_dirs)


def _samefile(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _namespace_metas(
    files: Sequence[IndexFile], metas: frozenset[str], metadata: Mapping[str, WheelMetadata]
) -> list[tuple[IndexFile, WheelMetadata | None]]:
    return [(item, metadata.get(item.location)) for item in files if item.project in metas]


def check_requirements(
    namespaces: Sequence[Namespace],
    metadata: Mapping[str, WheelMetadata],
    metas: frozenset[str],
) -> None:
    """Every family has a meta wheel, and every project its Requires-Dist names (any extra) is
    in the same namespace at a matching version."""
    missing: list[str] = []
    for ns in namespaces:
        listed = _namespace_metas(ns.files, metas, metadata)
        if not listed:
            missing.append(f"{ns.name}: no meta wheel ({', '.join(sorted(metas))})")
        for meta, meta_data in listed:
            if meta_data is None:
                continue  # merged by URL: checked when it was first indexed
            for line in meta_data.requires_dist:
                try:
                    requirement = Requirement(line)
                except InvalidRequirement as error:
                    raise IndexError_(
                        f"{meta.location}: invalid Requires-Dist {line!r} ({error})",
                        hint="rebuild the meta wheel",
                    ) from None
                name = canonicalize_name(requirement.name)
                if not any(
                    item.project == name
                    and requirement.specifier.contains(item.version, prereleases=True)
                    for item in ns.files
                ):
                    missing.append(f"{ns.name}: {meta.filename} requires {line}")
    if missing:
        raise IndexError_(
            "the package set is incomplete:\n" + format_list(missing),
            hint="build the missing wheels into dist/ (generic) or dist/<family>/, "
            "e.g. rerun `wheelyard build` for those families, or remove the meta wheel",
        )


def _requirement(
    metadata: Mapping[str, WheelMetadata], files: Sequence[IndexFile], metas: frozenset[str]
) -> str:
    """What the landing page tells people to install: the newest meta with all its extras."""
    candidates = [f for f in files if f.project in metas and f.location in metadata]
    if not candidates:
        return LandingInfo().requirement
    newest = metadata[max(candidates, key=lambda f: (version_key(f.version), f.filename)).location]
    extras = ",".join(newest.provides_extra)
    return f"{newest.name}[{extras}]" if extras else newest.name


def _family_namespaces(
    wheels: Sequence[LocalWheel], families: Iterable[str], problems: list[str]
) -> dict[str, list[IndexFile]]:
    """Each family's files: its own directory plus the generic wheels, each filename once."""
    generic = [w.entry for w in wheels if w.namespace == GENERIC]
    generic_names = {entry.filename for entry in generic}
    namespaces: dict[str, list[IndexFile]] = {}
    for family in sorted(families):
        own = [w.entry for w in wheels if w.namespace == family]
        problems.extend(
            f"{family}/{entry.filename} is also in the generic files"
            for entry in own
            if entry.filename in generic_names
        )
        namespaces[family] = generic + own
    return namespaces


def _carry_over(
    merged: Mapping[str, MergedNamespace],
    *,
    dist: Path,
    on_disk: Mapping[str, str],
    metadata: dict[str, WheelMetadata],
    problems: list[str],
) -> tuple[dict[str, list[IndexFile]], dict[str, Path]]:
    """Files kept from merged directories: which to hard-link into ``dist``, with METADATA.

    ``on_disk`` maps dist-relative paths already in ``dist`` to their sha256; ``metadata`` gets
    the METADATA of every carried file (for its sidecar and the requirement check).
    """
    imports: dict[str, Path] = {}
    files_by_ns: dict[str, list[IndexFile]] = {}
    for name, merged_ns in merged.items():
        updated: dict[str, IndexFile] = {}
        for kept in merged_ns.kept:
            entry = kept.entry
            if kept.root is None:
                continue  # merged by URL: linked where it is
            if entry.location in on_disk:
                if on_disk[entry.location] != entry.sha256:
                    problems.append(f"{entry.location}: {kept.root} lists other bytes than {dist}")
                continue
            source = kept.root / entry.location
            if _samefile(kept.root, dist) or not source.is_file():
                problems.append(f"{entry.location}: listed by {kept.root} but the file is missing")
                continue
            problem = _foreign_source(kept.root, source, entry)
            if problem is not None:
                problems.append(f"{source}: {problem}")
                continue
            if entry.location not in metadata:
                metadata[entry.location] = read_wheel_metadata(source)
            imports[entry.location] = source
            data = metadata[entry.location]
            updated[entry.filename] = replace(
                entry, requires_python=data.requires_python, metadata_sha256=data.sha256
            )
        files_by_ns[name] = [updated.get(f.filename, f) for f in merged_ns.files]
    return files_by_ns, imports


def _foreign_source(root: Path, source: Path, entry: IndexFile) -> str | None:
    """Why a file of a merged directory may not be imported: it must be a regular file (not a
    link) inside that directory, with the bytes its index lists."""
    if source.is_symlink() or not source.resolve().is_relative_to(root.resolve()):
        return "is a link or lies outside the merged index; only its own files are imported"
    if source.stat().st_size != entry.size:
        return "size differs from what its index lists"
    if hash_file(source).sha256 != entry.sha256:
        return "sha256 differs from what its index lists"
    return None


def _read_inputs(
    dist: Path,
    manifest: Path | None,
    merge_from: Sequence[str],
    fetch: Fetch,
    known: KnownFamilies | None,
) -> tuple[BuildManifest | None, list[ExistingIndex], list[LocalWheel], set[str]]:
    """The manifest, the indexes merged from, the wheels and the families, names all checked."""
    manifest_path = manifest if manifest is not None else dist.parent / MANIFEST_NAME
    build_manifest = None
    if manifest is not None or manifest_path.is_file():
        build_manifest = read_build_manifest(manifest_path)
    families: set[str] = set()
    for name in build_manifest.families if build_manifest else ():
        check_family(name, str(manifest_path), known, what="manifest family")
        families.add(name)
    existing = [read_existing_index(src, fetch=fetch, known=known) for src in merge_from]
    hashes = {  # an index merged in place already knows the hashes of the files in dist
        entry.location: (entry.sha256, entry.size)
        for ix in existing
        if ix.root is not None and _samefile(ix.root, dist)
        for files in ix.namespaces.values()
        for entry in files
        if not entry.is_remote
    }
    wheels = scan_dist(dist, build_manifest, known=hashes)
    for name in sorted({w.namespace for w in wheels if w.namespace != GENERIC}):
        check_family(name, f"--dist {dist}", known, what="family directory")
        families.add(name)
    if not families and not existing:
        raise IndexError_(
            f"{dist}: no family directories with wheels",
            hint="run `wheelyard build FAMILY... --out DIR` and pass --dist DIR/dist",
        )
    return build_manifest, existing, wheels, families


def plan_index(
    *,
    dist: Path,
    manifest: Path | None = None,
    merge_from: Sequence[str] = (),
    base_url: str | None = None,
    meta_projects: Sequence[str] = DEFAULT_META_PROJECTS,
    fetch: Fetch = http_fetch,
    families: FamilyRegistry | None = None,
) -> IndexPlan:
    """Read and check everything and render every page; writes nothing.

    ``manifest`` defaults to ``build-manifest.json`` beside ``dist`` when there is one.
    ``meta_projects`` (plus every ``kind: meta`` package of the manifest) name the meta
    distributions whose requirements must be complete in each family. ``families`` (the
    profile's) is what every family name, from ``dist`` or an index merged from, must be in.
    """
    known = KnownFamilies.from_registry(families) if families is not None else None
    build_manifest, existing, wheels, names = _read_inputs(dist, manifest, merge_from, fetch, known)
    listed = build_manifest.files if build_manifest else ()
    metas = frozenset(canonicalize_name(name) for name in meta_projects)
    metas |= {canonicalize_name(f.package) for f in listed if f.kind == "meta"}
    problems: list[str] = []
    merged = merge_namespaces(_family_namespaces(wheels, names, problems), existing)
    metadata = {wheel.entry.location: wheel.metadata for wheel in wheels}
    files_by_ns, imports = _carry_over(
        merged,
        dist=dist,
        on_disk={wheel.entry.location: wheel.entry.sha256 for wheel in wheels},
        metadata=metadata,
        problems=problems,
    )
    if problems:
        raise IndexError_(
            "cannot index these files:\n" + format_list(problems),
            hint="each filename may appear once per family namespace with one content, "
            "and every listed file must exist",
        )
    namespaces = namespaces_from(files_by_ns)
    check_requirements(namespaces, metadata, metas)
    all_files = [f for ns in namespaces for f in ns.files]
    landing = LandingInfo(requirement=_requirement(metadata, all_files, metas), base_url=base_url)
    pages = tuple(plan_pages(namespaces, landing=landing))
    stale, stale_dirs = plan_stale_pages(
        dist, [ns.name for ns in namespaces], {page.path for page in pages}
    )
    return IndexPlan(
        dist=dist,
        imports=tuple((imports[loc], loc) for loc in sorted(imports)),
        sidecars=tuple(
            Page(path=f"{loc}.metadata", data=metadata[loc].raw) for loc in sorted(metadata)
        ),
        pages=pages,
        namespaces=tuple(_summary(ns, len(merged[ns.name].kept)) for ns in namespaces),
        stale=stale,
        stale_dirs=stale_dirs,
    )


def _summary(ns: Namespace, kept: int) -> NamespaceSummary:
    return NamespaceSummary(
        name=ns.name,
        projects=len(ns.projects),
        files=len(ns.files),
        kept=kept,
        size=sum(f.size for f in ns.files),
        flat_page=flat_page_path(ns.name),
    )


def write_index(plan: IndexPlan) -> int:
    """Check every target of the plan, then apply it; returns how many files changed on disk.

    Nothing is written unless every write and delete resolves under ``plan.dist`` and meets
    the kind of entry it expects (see :func:`~wheelyard.index.confine.check_targets`).
    """
    check_targets(plan.dist, *plan.targets())
    changed = 0
    for source, location in plan.imports:
        import_file(source, plan.dist / location)
        changed += 1
    for page in (*plan.sidecars, *plan.pages):
        changed += replace_atomically(plan.dist / page.path, page.data)
    remove_stale(plan.dist, plan.stale, plan.stale_dirs)
    return changed


def make_index(
    *,
    dist: Path,
    manifest: Path | None = None,
    merge_from: Sequence[str] = (),
    base_url: str | None = None,
    fetch: Fetch = http_fetch,
    families: FamilyRegistry | None = None,
) -> IndexPlan:
    """Check ``dist`` and write its index; the returned plan says what was written."""
    plan = plan_index(
        dist=dist,
        manifest=manifest,
        merge_from=merge_from,
        base_url=base_url,
        fetch=fetch,
        families=families,
    )
    write_index(plan)
    return plan
